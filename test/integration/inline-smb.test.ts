// smbclient through the inline gateway's SMB relay to a real smbd: files arrive intact, the
// gateway's events match what `tollgate sniff` reports for a capture of the relayed connection,
// and a bulk-copy rule with action block cuts a recursive copy mid-way.
//
// smbd listens on ::1 (see bench/smb-server.ts for why not 127.0.0.x); the protected network is
// ::1/128 and smbclient connects to the relay from 127.0.0.1, outside it. The capture of the
// gateway-to-smbd connection has ::1 at both ends, so the test rewrites it offline with
// tcprewrite to 2001:db8::20 (client) and 2001:db8::10 (server) before sniffing it.
// Needs root (useradd, smbpasswd, tcpdump).

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  freePort,
  SMB_PASSWORD,
  SMB_SHARE,
  SMB_USER,
  type SmbServer,
  startSmbServer,
} from '../../bench/smb-server.js';
import { type RunningGateway, startGateway } from '../../src/cli/run.js';
import { runSniff } from '../../src/cli/sniff.js';
import { loadConfigText } from '../../src/config/load.js';
import { LoopbackCapture } from './support/capture.js';
import { byAction, type Event, readEventsIfAny } from './support/events.js';

const run = promisify(execFile);

const isRoot = process.getuid?.() === 0;
const CAPTURE_CLIENT = '2001:db8::20';
const CAPTURE_SERVER = '2001:db8::10';
/** Size of each file in the share's bulk folder, which the block test copies. */
const BULK_FILE_BYTES = 400_000;
const BULK_FILES = 6;
const BLOCK_THRESHOLD = 1_000_000;

/** Synthetic share contents: invented patient names, PDF-like exports and pydicom files. */
const MAKE_SHARE = `
import os, sys, random
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
root, bulk_files, bulk_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(20240611)
for d in ["exports/series1", "exports/series2", "bulk"]:
    os.makedirs(os.path.join(root, d), exist_ok=True)
def pdf(path, size):
    head = b"%PDF-1.4\\n% synthetic export\\n"
    tail = b"\\n%%EOF\\n"
    with open(os.path.join(root, path), "wb") as f:
        f.write(head + rng.randbytes(size - len(head) - len(tail)) + tail)
def dcm(path, rows):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "MUSTERMANN^ERIKA"
    ds.PatientID = "SYN-0001"
    ds.Modality = "CT"
    ds.Rows = rows; ds.Columns = 64; ds.BitsAllocated = 16; ds.BitsStored = 12; ds.HighBit = 11
    ds.PixelRepresentation = 0; ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = rng.randbytes(rows * 64 * 2)
    ds.is_little_endian = True; ds.is_implicit_VR = False
    ds.save_as(os.path.join(root, path), write_like_original=False)
pdf("exports/MUSTERMANN_ERIKA_19640812_report.pdf", 1_200_000)
pdf("exports/DOE_JANE_19710203_discharge.pdf", 40_000)
pdf("exports/series1/summary.pdf", 12_000)
for i in range(3):
    dcm(f"exports/series1/IM{i:04d}", 64 + 32 * i)
for i in range(2):
    dcm(f"exports/series2/IM{i:04d}.dcm", 512)
for i in range(bulk_files):
    pdf(f"bulk/PATIENT{i:02d}_SYNTHETIC_{19500101 + i}_record.pdf", bulk_bytes)
`;

import { testLog } from './support/log.js';

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Relative path to SHA-256 of every file under `dir`. */
function hashTree(dir: string): Map<string, string> {
  const hashes = new Map<string, string>();
  const walk = (current: string) => {
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) walk(path);
      else hashes.set(relative(dir, path), sha256(path));
    }
  };
  walk(dir);
  return hashes;
}

/**
 * Copies an event without the fields that differ between the gateway and sniff by design: ids,
 * times, addresses, ports and the observer type.
 */
function comparable(event: Event): Event {
  const copy = structuredClone(event);
  delete copy['@timestamp'];
  delete copy.event.id;
  delete copy.event.start;
  delete copy.event.end;
  delete copy.event.duration;
  delete copy.observer;
  delete copy.source?.ip;
  delete copy.source?.port;
  delete copy.destination?.ip;
  delete copy.destination?.port;
  delete copy.network?.community_id;
  delete copy.tollgate.flow?.id;
  delete copy.tollgate.remote;
  delete copy.tollgate.smb?.file?.first_seen;
  delete copy.tollgate.smb?.file?.last_seen;
  return copy;
}

/** Sorts the comparable events of one action into a stable order. */
function comparableList(events: Event[], action: string): Event[] {
  return byAction(events, action)
    .map(comparable)
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

interface SmbClientResult {
  code: number;
  output: string;
}

async function smbclient(
  port: number,
  options: string[],
  commands: string,
  cwd: string,
): Promise<SmbClientResult> {
  const args = [
    `//127.0.0.1/${SMB_SHARE}`,
    '-p',
    String(port),
    '-U',
    `${SMB_USER}%${SMB_PASSWORD}`,
    '-W',
    'HOSPITAL',
    '-n',
    'VENDORPC',
    ...options,
    '-c',
    commands,
  ];
  try {
    const { stdout, stderr } = await run('smbclient', args, { cwd, timeout: 120_000 });
    return { code: 0, output: `${stdout}${stderr}` };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string; killed?: boolean };
    if (failed.killed) throw new Error('smbclient timed out after 120 s');
    return { code: failed.code, output: `${failed.stdout}${failed.stderr}` };
  }
}

describe.skipIf(!isRoot)('SMB through the inline relay', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-inline-smb-'));
  const shareDir = join(dir, 'share');
  const eventsPath = join(dir, 'events.jsonl');
  const blockEventsPath = join(dir, 'block-events.jsonl');
  const filesEventsPath = join(dir, 'files-events.jsonl');
  const captures: LoopbackCapture[] = [];
  let server: SmbServer;
  let gateway: RunningGateway;
  let blockingGateway: RunningGateway;
  let relayPort = 0;
  let blockingRelayPort = 0;
  let filesGateway: RunningGateway;
  let filesRelayPort = 0;

  const log = testLog();

  async function startRelayGateway(name: string, events: string, policy: string) {
    const port = await freePort('127.0.0.1');
    writeFileSync(join(dir, `${name}-policy.yaml`), policy);
    const config = loadConfigText(
      `version: 1
policy: ${name}-policy.yaml
protected_networks: ["::1/128"]
source_networks: [127.0.0.1/32]
events: ${events}
include_phi: true
listeners:
  - { name: ${name}, type: relay, listen: "127.0.0.1:${port}", upstream: "[::1]:${server.port}", protocol: smb }
limits: { drain_timeout: 2s }
`,
      join(dir, `${name}.yaml`),
      dir,
    );
    const running = await startGateway({ config, log });
    return { running, port };
  }

  /** Waits until the gateway has written the network-flow event of every flow it opened. */
  async function settledEvents(path: string, flows: number): Promise<Event[]> {
    for (let attempt = 0; attempt < 100; attempt++) {
      const events = readEventsIfAny(path);
      if (byAction(events, 'network-flow').length >= flows) return events;
      await sleep(100);
    }
    throw new Error(`fewer than ${flows} network-flow events in ${path} after 10 s`);
  }

  /**
   * Runs smbclient through the relay while tcpdump records the gateway-to-smbd connection, then
   * sniffs the rewritten capture. Returns the gateway's and sniff's events for that session.
   */
  async function relayedSession(name: string, options: string[], commands: string, cwd: string) {
    const before = readEventsIfAny(eventsPath);
    const raw = join(dir, `${name}.raw.pcap`);
    const capture = new LoopbackCapture(raw, `tcp port ${server.port}`);
    captures.push(capture);
    await capture.started();
    const client = await smbclient(relayPort, options, commands, cwd);
    const flows = byAction(before, 'network-flow').length + 1;
    const gatewayEvents = (await settledEvents(eventsPath, flows)).slice(before.length);
    await capture.stop();

    const rewritten = join(dir, `${name}.pcap`);
    writeFileSync(join(dir, 'services'), `smb-test ${server.port}/tcp\n`);
    await run('tcpprep', [
      '--port',
      `--services=${join(dir, 'services')}`,
      `--pcap=${raw}`,
      `--cachefile=${join(dir, `${name}.cache`)}`,
    ]);
    await run('tcprewrite', [
      `--infile=${raw}`,
      `--outfile=${rewritten}`,
      `--cachefile=${join(dir, `${name}.cache`)}`,
      `--endpoints=[${CAPTURE_CLIENT}]:[${CAPTURE_SERVER}]`,
      '--fixcsum',
    ]);
    const sniffEventsPath = join(dir, `${name}.sniff.jsonl`);
    const status = await runSniff(
      {
        input: rewritten,
        protected: `${CAPTURE_SERVER}/128`,
        events: sniffEventsPath,
        includePhi: true,
      },
      new PassThrough(),
      new PassThrough(),
    );
    expect(status).toBe(0);
    return { client, gatewayEvents, sniffEvents: readEventsIfAny(sniffEventsPath) };
  }

  function expectSameEvents(
    gatewayEvents: Event[],
    sniffEvents: Event[],
    actions = ['smb-file-access', 'smb-session', 'network-flow'],
  ): void {
    for (const action of actions) {
      const fromGateway = comparableList(gatewayEvents, action);
      expect(fromGateway.length, action).toBeGreaterThan(0);
      expect(fromGateway, action).toEqual(comparableList(sniffEvents, action));
    }
  }

  beforeAll(async () => {
    await run('/usr/bin/python3', [
      '-c',
      MAKE_SHARE,
      shareDir,
      String(BULK_FILES),
      String(BULK_FILE_BYTES),
    ]);
    server = await startSmbServer({ dir: join(dir, 'smbd'), shareDir });
    ({ running: gateway, port: relayPort } = await startRelayGateway(
      'files',
      'events.jsonl',
      'version: 1\nrules: []\n',
    ));
    ({ running: blockingGateway, port: blockingRelayPort } = await startRelayGateway(
      'guarded',
      'block-events.jsonl',
      `version: 1
rules:
  - id: vendor-bulk-copy
    name: Vendor copied more than 1 MB of files
    kind: bulk-copy
    action: block
    threshold: ${BLOCK_THRESHOLD}
    per: user
    window: hour
    when: { users: [${SMB_USER}], shares: [${SMB_SHARE}] }
`,
    ));
    ({ running: filesGateway, port: filesRelayPort } = await startRelayGateway(
      'counted',
      'files-events.jsonl',
      `version: 1
rules:
  - id: vendor-file-count
    name: Vendor copied more than 2 files
    kind: bulk-copy
    action: block
    files: 2
    per: user
    window: hour
`,
    ));
  }, 120_000);

  afterAll(async () => {
    for (const capture of captures) capture.kill();
    await gateway?.stop();
    await blockingGateway?.stop();
    await filesGateway?.stop();
    await server?.stop();
    if (process.env.TOLLGATE_KEEP === undefined) rmSync(dir, { recursive: true, force: true });
    else process.stderr.write(`kept ${dir}\n`);
  });

  it('gets files over SMB2 intact and matching sniff', async () => {
    const local = join(dir, 'smb2-get');
    mkdirSync(local);
    const { client, gatewayEvents, sniffEvents } = await relayedSession(
      'smb2-get',
      ['-m', 'SMB2'],
      'ls; cd exports; get MUSTERMANN_ERIKA_19640812_report.pdf; cd series2; get IM0000.dcm',
      local,
    );
    expect(client.code, client.output).toBe(0);
    expect(sha256(join(local, 'MUSTERMANN_ERIKA_19640812_report.pdf'))).toBe(
      sha256(join(shareDir, 'exports', 'MUSTERMANN_ERIKA_19640812_report.pdf')),
    );
    expect(sha256(join(local, 'IM0000.dcm'))).toBe(
      sha256(join(shareDir, 'exports', 'series2', 'IM0000.dcm')),
    );

    const reads = byAction(gatewayEvents, 'smb-file-access').filter(
      (event) => event.tollgate.smb.file.bytes_read > 0,
    );
    expect(reads.map((event) => event.file.path).sort()).toEqual([
      'exports\\MUSTERMANN_ERIKA_19640812_report.pdf',
      'exports\\series2\\IM0000.dcm',
    ]);
    for (const event of reads) {
      expect(event.user.name).toBe(SMB_USER);
      expect(event.tollgate.smb.file.share).toBe(`\\\\127.0.0.1\\${SMB_SHARE}`);
      expect(event.tollgate.smb.file.read_fully).toBe(true);
    }
    const dicom = reads.find((event) => event.file.path.endsWith('.dcm'));
    expect(dicom?.tollgate.smb.file.bytes_read).toBe(
      readFileSync(join(shareDir, 'exports', 'series2', 'IM0000.dcm')).length,
    );
    expect(dicom?.tollgate.smb.file.looks_like_dicom).toBe(true);
    const [session] = byAction(gatewayEvents, 'smb-session').filter(
      (event) => event.tollgate.smb.session.files_opened > 0,
    );
    expect(session?.tollgate.smb.session.dialect).toMatch(/^2\./);

    expectSameEvents(gatewayEvents, sniffEvents);
  }, 120_000);

  it('copies a folder recursively over signed SMB3', async () => {
    const local = join(dir, 'smb3-mget');
    mkdirSync(local);
    const { client, gatewayEvents, sniffEvents } = await relayedSession(
      'smb3-mget',
      ['-m', 'SMB3', '--client-protection=sign'],
      'cd exports; recurse ON; prompt OFF; mget series1',
      local,
    );
    expect(client.code, client.output).toBe(0);
    const expected = hashTree(join(shareDir, 'exports', 'series1'));
    expect(hashTree(join(local, 'series1'))).toEqual(expected);

    const reads = byAction(gatewayEvents, 'smb-file-access').filter(
      (event) => event.tollgate.smb.file.bytes_read > 0,
    );
    expect(reads).toHaveLength(expected.size);
    for (const event of reads) {
      const name = event.file.path.split('\\').pop();
      const size = readFileSync(join(shareDir, 'exports', 'series1', name)).length;
      expect(event.tollgate.smb.file.bytes_read, name).toBe(size);
    }
    const [session] = byAction(gatewayEvents, 'smb-session').filter(
      (event) => event.tollgate.smb.session.files_opened > 0,
    );
    expect(session?.tollgate.smb.session.signed).toBe(true);
    expect(session?.tollgate.smb.session.dialect).toBe('3.1.1');
    expect(session?.tollgate.smb.session.files_read_fully).toBe(expected.size);

    expectSameEvents(gatewayEvents, sniffEvents);
  }, 120_000);

  it('puts a file over SMB3 intact and matching sniff', async () => {
    const local = join(dir, 'smb3-put');
    mkdirSync(local);
    writeFileSync(
      join(local, 'vendor_notes.pdf'),
      readFileSync(join(shareDir, 'exports', 'DOE_JANE_19710203_discharge.pdf')),
    );
    const { client, gatewayEvents, sniffEvents } = await relayedSession(
      'smb3-put',
      ['-m', 'SMB3'],
      'cd exports; put vendor_notes.pdf',
      local,
    );
    expect(client.code, client.output).toBe(0);
    expect(sha256(join(shareDir, 'exports', 'vendor_notes.pdf'))).toBe(
      sha256(join(local, 'vendor_notes.pdf')),
    );
    const written = byAction(gatewayEvents, 'smb-file-access').filter(
      (event) => event.tollgate.smb.file.bytes_written > 0,
    );
    expect(written.map((event) => event.file.path)).toEqual(['exports\\vendor_notes.pdf']);
    expect(written[0]!.tollgate.smb.file.bytes_written).toBe(40_000);

    expectSameEvents(gatewayEvents, sniffEvents);
  }, 120_000);

  it('meters an encrypted SMB3 session without inventing files', async () => {
    const local = join(dir, 'smb3-encrypted');
    mkdirSync(local);
    const { client, gatewayEvents, sniffEvents } = await relayedSession(
      'smb3-encrypted',
      ['-m', 'SMB3', '--client-protection=encrypt'],
      'cd exports; get DOE_JANE_19710203_discharge.pdf',
      local,
    );
    expect(client.code, client.output).toBe(0);
    expect(sha256(join(local, 'DOE_JANE_19710203_discharge.pdf'))).toBe(
      sha256(join(shareDir, 'exports', 'DOE_JANE_19710203_discharge.pdf')),
    );
    const sessions = byAction(gatewayEvents, 'smb-session');
    expect(sessions.some((event) => event.tollgate.smb.session.encrypted)).toBe(true);
    expect(
      byAction(gatewayEvents, 'smb-file-access').filter(
        (event) => event.tollgate.smb.file.bytes_read > 0,
      ),
    ).toHaveLength(0);
    const [flow] = byAction(gatewayEvents, 'network-flow');
    expect(flow?.tollgate.egress.bytes).toBeGreaterThan(40_000);

    expect(byAction(sniffEvents, 'smb-file-access')).toHaveLength(0);
    expectSameEvents(gatewayEvents, sniffEvents, ['smb-session', 'network-flow']);
  }, 120_000);

  it('cuts a recursive copy over the bulk-copy threshold', async () => {
    const local = join(dir, 'cut');
    mkdirSync(local);
    const client = await smbclient(
      blockingRelayPort,
      ['-m', 'SMB3'],
      'recurse ON; prompt OFF; mget bulk',
      local,
    );
    expect(client.code, client.output).not.toBe(0);
    expect(client.output).toMatch(/NT_STATUS_CONNECTION_(RESET|DISCONNECTED)/);

    // The two files below the threshold arrive whole. The read that crosses it is never
    // forwarded, so the third file stops short and the rest never start.
    const shareHashes = hashTree(join(shareDir, 'bulk'));
    const arrived = existsSync(join(local, 'bulk')) ? hashTree(join(local, 'bulk')) : new Map();
    const whole = [...arrived].filter(([name, hash]) => shareHashes.get(name) === hash);
    expect(whole).toHaveLength(Math.floor(BLOCK_THRESHOLD / BULK_FILE_BYTES));
    expect(arrived.size).toBeLessThan(BULK_FILES);

    const events = await settledEvents(blockEventsPath, 1);
    const [cut] = byAction(events, 'transfer-cut');
    expect(cut?.rule.id).toBe('vendor-bulk-copy');
    expect(cut?.tollgate.enforcement.answer).toBe('reset');
    expect(cut?.tollgate.enforcement.bytes_to_client).toBeGreaterThan(
      Math.floor(BLOCK_THRESHOLD / BULK_FILE_BYTES) * BULK_FILE_BYTES,
    );
    // SMB headers add a few hundred bytes per READ response to the file data forwarded.
    expect(cut?.tollgate.enforcement.bytes_to_client).toBeLessThan(BLOCK_THRESHOLD + 65_536);
    const alerts = byAction(events, 'bulk-file-copy');
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.tollgate.verdict).toBe('block');
    expect(alerts[0]!.event.type).toContain('denied');
    expect(alerts[0]!.tollgate.meter.measure).toBe('bytes');
    expect(alerts[0]!.tollgate.meter.bytes).toBeGreaterThan(BLOCK_THRESHOLD);
    const [flow] = byAction(events, 'network-flow');
    expect(flow?.tollgate.flow.end_reason).toBe('cut');
  }, 120_000);

  it('cuts the file past a files limit at its first read', async () => {
    const local = join(dir, 'counted');
    mkdirSync(local);
    const client = await smbclient(
      filesRelayPort,
      ['-m', 'SMB3'],
      'recurse ON; prompt OFF; mget bulk',
      local,
    );
    expect(client.code, client.output).not.toBe(0);

    // Two files may leave; the third is cut at its first READ response, so none of it arrives.
    const shareHashes = hashTree(join(shareDir, 'bulk'));
    const arrived = existsSync(join(local, 'bulk')) ? hashTree(join(local, 'bulk')) : new Map();
    const whole = [...arrived].filter(([name, hash]) => shareHashes.get(name) === hash);
    expect(whole).toHaveLength(2);

    const events = await settledEvents(filesEventsPath, 1);
    const [cut] = byAction(events, 'transfer-cut');
    expect(cut?.rule.id).toBe('vendor-file-count');
    expect(cut?.tollgate.enforcement.bytes_to_client).toBeLessThan(3 * BULK_FILE_BYTES);
    const [alert] = byAction(events, 'bulk-file-copy');
    expect(alert?.tollgate.meter.measure).toBe('files');
    expect(alert?.tollgate.meter.files).toBe(3);
  }, 120_000);
});
