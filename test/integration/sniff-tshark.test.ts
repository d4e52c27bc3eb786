// Runs `tollgate sniff` (runSniff) on the recorded fixture captures and the bundled sample, and
// checks its figures against tshark 4.0 on the same files: payload bytes per connection and
// direction, C-STORE requests and SOP Instance UIDs, HTTP requests, TLS server names.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newDecodeStats, PacketDecoder } from '../../src/capture/decode.js';
import { newCaptureStats, openCaptureFile, readCapture } from '../../src/capture/reader.js';
import { createPseudonymizer, loadPolicyOption } from '../../src/cli/options.js';
import { runSniff } from '../../src/cli/sniff.js';
import { Engine } from '../../src/engine/engine.js';
import { DEFAULT_TRACKER_LIMITS, TcpTracker } from '../../src/engine/tcp-tracker.js';
import type { Millis, Observation } from '../../src/engine/types.js';
import { CidrSet } from '../../src/policy/cidr.js';
import { PROTOCOLS } from '../../src/protocols/registry.js';
import { byAction } from './support/events.js';
import { TextCollector } from './support/streams.js';

const repo = join(import.meta.dirname, '..', '..');
const fixture = (path: string) => join(repo, 'test', 'fixtures', path);
const SAMPLE = join(repo, 'samples', 'vendor-night.pcap');
const sampleFacts = JSON.parse(readFileSync(join(repo, 'samples', 'vendor-night.json'), 'utf8'));
// The fixture scripts put the inside hosts in 198.51.100.0/24, which the default policy does not
// protect; the sample uses RFC 1918 inside addresses, so it runs with the default policy.
const FIXTURE_PROTECTED = '198.51.100.0/24';

type EcsEvent = any;

interface SniffResult {
  exitCode: number;
  events: EcsEvent[];
  stderr: string;
}

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'tollgate-sniff-tshark-'));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

let runCounter = 0;
async function sniff(input: string, extra: Partial<Parameters<typeof runSniff>[0]> = {}) {
  const events = join(work, `events-${runCounter++}.jsonl`);
  const stdout = new TextCollector();
  const stderr = new TextCollector();
  const exitCode = await runSniff({ input, events, ...extra }, stdout, stderr);
  const lines = readFileSync(events, 'utf8')
    .split('\n')
    .filter((line) => line !== '');
  return {
    exitCode,
    events: lines.map((line) => JSON.parse(line)),
    stderr: stderr.text,
  } satisfies SniffResult;
}

function tshark(args: string[]): string {
  return execFileSync('tshark', ['-n', ...args], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
}

/**
 * TCP payload bytes per direction, keyed "srcip:port>dstip:port", from tshark's relative
 * sequence numbers: the highest seq + len - 1 of a segment with payload. Summing tcp.len would
 * count retransmissions twice (the sample has some: it was recorded on a loopback with a
 * 1500-byte MTU), and tshark does not flag every one. Valid only without gaps, which the
 * callers check through tollgate.egress.estimated_missing_bytes.
 */
/** Method, Host and User-Agent of each HTTP request tshark finds, tab-separated. */
function tsharkHttpRequests(path: string): string[] {
  const output = tshark([
    '-r',
    path,
    '-o',
    'http.desegment_body:FALSE',
    '-Y',
    'http.request',
    '-T',
    'fields',
    '-e',
    'http.request.method',
    '-e',
    'http.host',
    '-e',
    'http.user_agent',
  ]);
  return output.split('\n').filter((line) => line !== '');
}

function tsharkPayloadBytes(path: string): Map<string, number> {
  const output = tshark([
    '-r',
    path,
    '-Y',
    'tcp.len > 0',
    '-T',
    'fields',
    '-e',
    'ip.src',
    '-e',
    'tcp.srcport',
    '-e',
    'ip.dst',
    '-e',
    'tcp.dstport',
    '-e',
    'tcp.seq',
    '-e',
    'tcp.len',
  ]);
  const bytes = new Map<string, number>();
  for (const line of output.split('\n')) {
    const [src, srcPort, dst, dstPort, seq, length] = line.split('\t');
    if (length === undefined) continue;
    const key = `${src}:${srcPort}>${dst}:${dstPort}`;
    bytes.set(key, Math.max(bytes.get(key) ?? 0, Number(seq) + Number(length) - 1));
  }
  return bytes;
}

/** Conversations listed by `tshark -z conv,tcp`, as "a:port<->b:port" with the lower key first. */
function tsharkConversations(path: string): Set<string> {
  const output = tshark(['-r', path, '-q', '-z', 'conv,tcp']);
  const conversations = new Set<string>();
  for (const match of output.matchAll(/^(\S+:\d+)\s+<->\s+(\S+:\d+)\s/gm)) {
    conversations.add(conversationKey(match[1] as string, match[2] as string));
  }
  return conversations;
}

const conversationKey = (a: string, b: string) => (a < b ? `${a}<->${b}` : `${b}<->${a}`);

/** C-STORE-RQ count and dataset SOP Instance UIDs decoded by tshark on the given DICOM ports. */
function tsharkDicom(path: string, ports: number[]) {
  const decodeAs = ports.flatMap((port) => ['-d', `tcp.port==${port},dicom`]);
  const output = tshark([
    '-r',
    path,
    '-o',
    'tcp.reassemble_out_of_order:TRUE',
    ...decodeAs,
    '-Y',
    'dicom',
    '-O',
    'dicom',
    '-V',
  ]);
  const storeRequests = [...output.matchAll(/\(0000,0100\)\s+\d+ Command Field\s+C-STORE-RQ$/gm)];
  const sopInstanceUids = new Set<string>();
  for (const match of output.matchAll(
    /\(0008,0018\)\s+\d+ SOP Instance UID\s+(?:\[UI\] )?(\S+)$/gm,
  ))
    sopInstanceUids.add(match[1] as string);
  return { storeRequests: storeRequests.length, sopInstanceUids };
}

/** Runs the engine on a capture and keeps every observation the analyzers report. */
async function observe(path: string, protectedNetworks: string | null): Promise<Observation[]> {
  const observations: Observation[] = [];
  class RecordingEngine extends Engine {
    override onObservation(
      flow: Parameters<Engine['onObservation']>[0],
      observation: Observation,
      ts: Millis,
    ) {
      observations.push(observation);
      super.onObservation(flow, observation, ts);
    }
  }
  const policy = loadPolicyOption(undefined);
  const networks =
    protectedNetworks === null ? policy.protectedNetworks : CidrSet.parse([protectedNetworks]);
  if (networks === null) throw new Error('the default policy has no protected networks');
  const engine = new RecordingEngine({
    policy,
    protectedNetworks: networks,
    sink: { write: () => {}, close: async () => {} } as never,
    pseudonymizer: createPseudonymizer(false),
    mode: 'span',
    protocols: PROTOCOLS,
    observer: { hostname: 'test', version: 'test' },
  });
  const tracker = new TcpTracker(engine, DEFAULT_TRACKER_LIMITS);
  const decoder = new PacketDecoder(newDecodeStats());
  let lastTs = 0;
  await readCapture(
    openCaptureFile(path),
    (frame) => {
      lastTs = Math.max(lastTs, frame.ts);
      const packet = decoder.decode(frame);
      if (packet !== null) tracker.packet(packet);
    },
    newCaptureStats(),
  );
  tracker.finish(lastTs);
  engine.finish(lastTs);
  return observations;
}

/** Checks every network-flow event's byte counts against tshark's payload sums. */
function expectFlowBytesMatchTshark(path: string, events: EcsEvent[]) {
  const tsharkBytes = tsharkPayloadBytes(path);
  const flows = byAction(events, 'network-flow');
  const seen = new Set<string>();
  for (const flow of flows) {
    const initiator = `${flow.source.ip}:${flow.source.port}`;
    const responder = `${flow.destination.ip}:${flow.destination.port}`;
    seen.add(conversationKey(initiator, responder));
    expect(flow.tollgate.flow.mid_stream, `${initiator} -> ${responder}`).toBe(false);
    expect(flow.tollgate.egress.estimated_missing_bytes ?? 0).toBe(0);
    expect(flow.source.bytes, `${initiator} -> ${responder}`).toBe(
      tsharkBytes.get(`${initiator}>${responder}`) ?? 0,
    );
    expect(flow.destination.bytes, `${responder} -> ${initiator}`).toBe(
      tsharkBytes.get(`${responder}>${initiator}`) ?? 0,
    );
  }
  expect(seen).toEqual(tsharkConversations(path));
  expect(flows.length).toBe(seen.size);
}

const CAPTURES = [
  'dicom/store.pcap',
  'dicom/move.pcap',
  'dicom/get.pcap',
  'http/curl.pcap',
  'http/rclone.pcap',
  'tls/client-hello.pcap',
  'smb/smb2-get.pcap',
  'smb/smb3-signed-mget.pcap',
];

describe('sniff against tshark on the fixtures', () => {
  for (const name of CAPTURES) {
    it(`flow bytes of ${name}`, async () => {
      const result = await sniff(fixture(name), { protected: FIXTURE_PROTECTED });
      expect(result.exitCode).toBe(0);
      expectFlowBytesMatchTshark(fixture(name), result.events);
    });
  }

  for (const name of ['store', 'move', 'get']) {
    it(`C-STORE requests of dicom/${name}.pcap`, async () => {
      const path = fixture(`dicom/${name}.pcap`);
      const facts = JSON.parse(readFileSync(fixture(`dicom/${name}.json`), 'utf8'));
      const ports = Object.values(facts.ports) as number[];
      const fromTshark = tsharkDicom(path, ports);
      const expectedUids = new Set<string>(
        facts.instances.map((entry: { sopInstanceUid: string }) => entry.sopInstanceUid),
      );
      expect(fromTshark.storeRequests).toBe(facts.instancesSent);
      expect(fromTshark.sopInstanceUids).toEqual(expectedUids);

      const result = await sniff(path, { protected: FIXTURE_PROTECTED });
      const associations = byAction(result.events, 'dicom-association');
      const storeRequests = associations.reduce(
        (sum: number, event: EcsEvent) => sum + (event.tollgate.dicom.commands['C-STORE-RQ'] ?? 0),
        0,
      );
      const instances = associations.reduce(
        (sum: number, event: EcsEvent) => sum + event.tollgate.dicom.instances,
        0,
      );
      expect(storeRequests).toBe(fromTshark.storeRequests);
      expect(instances).toBe(fromTshark.storeRequests);

      const observed = await observe(path, FIXTURE_PROTECTED);
      const uids = new Set(
        observed.flatMap((entry) =>
          entry.kind === 'dicom-instance' && entry.attributes.sopInstanceUid !== undefined
            ? [entry.attributes.sopInstanceUid]
            : [],
        ),
      );
      expect(uids).toEqual(fromTshark.sopInstanceUids);
    });
  }

  it('HTTP requests of http/curl.pcap', async () => {
    const path = fixture('http/curl.pcap');
    const fromTshark = tsharkHttpRequests(path)
      .map((line) => line.split('\t').join(' '))
      .sort();
    const result = await sniff(path, { protected: FIXTURE_PROTECTED });
    const fromTollgate = byAction(result.events, 'http-request')
      .map((event: EcsEvent) =>
        [
          event.http.request.method,
          event.url.domain === undefined ? '' : hostOf(event),
          event.user_agent?.original ?? '',
        ].join(' '),
      )
      .sort();
    expect(fromTollgate).toEqual(fromTshark);
  });

  it('TLS server names of tls/client-hello.pcap', async () => {
    const path = fixture('tls/client-hello.pcap');
    const output = tshark([
      '-r',
      path,
      '-Y',
      'tls.handshake.type == 1',
      '-T',
      'fields',
      '-e',
      'tls.handshake.extensions_server_name',
    ]);
    const fromTshark = output
      .split('\n')
      .filter((line) => line !== '')
      .sort();
    const result = await sniff(path, { protected: FIXTURE_PROTECTED });
    const fromTollgate = byAction(result.events, 'tls-client-hello')
      .map((event: EcsEvent) => event.tls.client.server_name)
      .sort();
    expect(fromTshark.length).toBe(6);
    expect(fromTollgate).toEqual(fromTshark);
  });
});

/** The Host header as the event carries it: url.domain plus url.port when one was given. */
function hostOf(event: EcsEvent): string {
  return event.url.port === undefined ? event.url.domain : `${event.url.domain}:${event.url.port}`;
}

describe('sniff on the bundled sample', () => {
  let result: SniffResult;
  beforeAll(async () => {
    result = await sniff(SAMPLE);
  });

  it('sample exits 0 with the default policy', () => {
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toContain('Top remotes by egress bytes per UTC hour');
  });

  it('sample flow bytes match tshark', () => {
    expectFlowBytesMatchTshark(SAMPLE, result.events);
  });

  it('sample C-STORE requests match tshark', async () => {
    const ports = Object.values(sampleFacts.ports) as number[];
    const fromTshark = tsharkDicom(SAMPLE, ports);
    const sent = [...sampleFacts.cGet, ...sampleFacts.cMove, ...sampleFacts.archive];
    expect(fromTshark.storeRequests).toBe(sent.length);
    expect(fromTshark.sopInstanceUids).toEqual(
      new Set(sent.map((entry: { sopInstanceUid: string }) => entry.sopInstanceUid)),
    );

    const instances = byAction(result.events, 'dicom-association').reduce(
      (sum: number, event: EcsEvent) => sum + event.tollgate.dicom.instances,
      0,
    );
    expect(instances).toBe(fromTshark.storeRequests);
    const observed = await observe(SAMPLE, null);
    const uids = new Set(
      observed.flatMap((entry) =>
        entry.kind === 'dicom-instance' && entry.attributes.sopInstanceUid !== undefined
          ? [entry.attributes.sopInstanceUid]
          : [],
      ),
    );
    expect(uids).toEqual(fromTshark.sopInstanceUids);
  });

  it('C-MOVE sub-association names the vendor', () => {
    const { vendor, pacs } = sampleFacts.addresses;
    const associations = byAction(result.events, 'dicom-association');
    const moveRequests = associations.filter(
      (event: EcsEvent) => event.tollgate.dicom.move_destinations.length > 0,
    );
    const subAssociations = associations.filter(
      (event: EcsEvent) =>
        event.source.ip === pacs && event.destination.port === sampleFacts.ports.vendorScp,
    );
    expect(moveRequests).toHaveLength(2);
    expect(subAssociations).toHaveLength(2);
    for (const event of subAssociations) {
      const requester = event.tollgate.dicom.move_requested_by;
      expect(requester.ip).toBe(vendor);
      expect(requester.ae_title).toBe('VENDOR');
      expect(moveRequests.map((move: EcsEvent) => move.tollgate.flow.id)).toContain(
        requester.flow_id,
      );
      expect(event.tollgate.dicom.instances).toBe(sampleFacts.cMove.length / 2);
    }
  });

  it('egress meters per remote match the flows', () => {
    const meters = byAction(result.events, 'egress-meter').filter(
      (event: EcsEvent) =>
        event.tollgate.meter.per === 'remote' && event.tollgate.meter.window === 'hour',
    );
    const flows = byAction(result.events, 'network-flow');
    const expected = new Map<string, number>();
    for (const flow of flows)
      expected.set(
        flow.tollgate.remote.ip,
        (expected.get(flow.tollgate.remote.ip) ?? 0) + flow.tollgate.egress.bytes,
      );
    expect(
      new Map(
        meters.map((event: EcsEvent) => [event.tollgate.remote.ip, event.tollgate.egress.bytes]),
      ),
    ).toEqual(expected);
    for (const event of meters) expect(event.tollgate.meter.start).toBe('2024-11-16T02:00:00.000Z');
    const vendorMeter = meters.find(
      (event: EcsEvent) => event.tollgate.remote.ip === sampleFacts.addresses.vendor,
    );
    expect(vendorMeter.tollgate.dicom.instances).toBe(
      sampleFacts.cGet.length + sampleFacts.cMove.length,
    );
    expect(vendorMeter.tollgate.egress.bytes).toBeGreaterThan(50e6);
  });

  it('default policy raises the three alerts', () => {
    const alerts = result.events.filter((event: EcsEvent) => event.event.kind === 'alert');
    const actions = alerts
      .map((event: EcsEvent) => `${event.event.action} ${event.tollgate.remote.ip}`)
      .sort();
    const { vendor, cloud } = sampleFacts.addresses;
    expect(actions).toEqual([
      `bulk-dicom-egress ${vendor}`,
      `cloud-storage-transfer ${cloud}`,
      `cloud-storage-transfer ${cloud}`,
      `egress-threshold-exceeded ${vendor}`,
    ]);
    for (const alert of alerts) {
      expect(alert.rule.id).toBeTypeOf('string');
      expect(alert.event.id).toBeTypeOf('string');
    }
    const archiveAlerts = alerts.filter(
      (event: EcsEvent) => event.tollgate.remote.ip === sampleFacts.addresses.archive,
    );
    expect(archiveAlerts).toEqual([]);
  });

  it('sample HTTP and TLS names match tshark', () => {
    const http = tsharkHttpRequests(SAMPLE);
    expect(http).toEqual(['PUT\tmybucket.s3.amazonaws.com\trclone/']);
    const request = byAction(result.events, 'http-request');
    expect(
      request.map((event: EcsEvent) => [
        event.http.request.method,
        event.url.domain,
        event.user_agent.original,
      ]),
    ).toEqual([['PUT', 'mybucket.s3.amazonaws.com', 'rclone/']]);

    const sni = tshark([
      '-r',
      SAMPLE,
      '-Y',
      'tls.handshake.type == 1',
      '-T',
      'fields',
      '-e',
      'tls.handshake.extensions_server_name',
    ])
      .split('\n')
      .filter((line) => line !== '');
    const hellos = byAction(result.events, 'tls-client-hello').map(
      (event: EcsEvent) => event.tls.client.server_name,
    );
    expect(hellos).toEqual(sni);
  });

  it('sample events carry no patient ID in clear', async () => {
    const patientIds = new Set<string>(
      [...sampleFacts.cGet, ...sampleFacts.cMove, ...sampleFacts.archive].map(
        (entry: { patientId: string }) => entry.patientId,
      ),
    );
    const text = result.events.map((event) => JSON.stringify(event)).join('\n');
    for (const id of patientIds) expect(text).not.toContain(id);

    const withPhi = await sniff(SAMPLE, { includePhi: true });
    const phiText = withPhi.events.map((event) => JSON.stringify(event)).join('\n');
    for (const id of patientIds) expect(phiText).toContain(id);
  });
});
