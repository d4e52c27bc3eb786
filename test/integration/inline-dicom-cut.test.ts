// A C-STORE association cut mid-way through a DICOM relay: storescu sends study 1 of the sample
// datasets (30 small CT slices and a 12.5 MB CR image) over a 4 MB egress threshold. Between
// the relay and storescp a counting forwarder in this process records what the archive side
// received: the bytes, the type of the last PDU and whether the connection ended with a FIN.

import { type ChildProcess, execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningGateway, startGateway } from '../../src/cli/run.js';
import { loadConfigText } from '../../src/config/load.js';
import { READ_BUFFER_BYTES } from '../../src/proxy/reused-read-buffer.js';
import { spawnStorescp } from './support/dicom.js';
import { byAction, readEvents } from './support/events.js';
import { testLog } from './support/log.js';
import { freePort, waitForPort } from './support/ports.js';
import { killGroup } from './support/processes.js';

const run = promisify(execFile);
const THRESHOLD = 4_000_000;
/** storescu's default maximum PDU length (dcmtk 3.6.7), the most a completed PDU can add. */
const STORESCU_MAX_PDU = 16_384;
const PDU_TYPE_ABORT = 0x07;

/** What the archive side of the relay received, seen by the forwarder. */
interface ArchiveSide {
  bytes: number;
  lastPduType: number;
  /** 'fin' when the relay closed with a FIN, 'reset' when it reset the connection. */
  ended: 'fin' | 'reset' | null;
}

/** Forwards one connection to storescp and walks the PDU headers the relay sends. */
function countingForwarder(storescpPort: number, seen: ArchiveSide): Server {
  return createServer({ allowHalfOpen: true }, (fromRelay) => {
    const toArchive = connect({ host: '127.0.0.2', port: storescpPort, allowHalfOpen: true });
    toArchive.on('error', () => {});
    toArchive.pipe(fromRelay).on('error', () => {});

    // Offset of the next PDU header in the stream, and the header bytes seen so far.
    let nextHeader = 0;
    let header: number[] = [];
    fromRelay.on('data', (chunk: Buffer) => {
      for (let index = 0; index < chunk.length; index++) {
        const position = seen.bytes + index;
        if (position < nextHeader) continue;
        header.push(chunk[index]!);
        if (header.length === 6) {
          seen.lastPduType = header[0]!;
          nextHeader = position + 1 + Buffer.from(header).readUInt32BE(2);
          header = [];
        }
      }
      seen.bytes += chunk.length;
      toArchive.write(chunk);
    });
    fromRelay.on('end', () => {
      seen.ended = 'fin';
      toArchive.end();
    });
    fromRelay.on('error', () => {
      seen.ended = 'reset';
      toArchive.destroy();
    });
  });
}

describe('DICOM relay cut over the threshold', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-dicom-cut-'));
  const eventsPath = join(dir, 'events.jsonl');
  const children: ChildProcess[] = [];
  const seen: ArchiveSide = { bytes: 0, lastPduType: -1, ended: null };
  let forwarder: Server;
  let gateway: RunningGateway;
  let relayPort = 0;

  beforeAll(async () => {
    const storescpPort = await freePort('127.0.0.2');
    const forwarderPort = await freePort('127.0.0.2');
    relayPort = await freePort();

    mkdirSync(join(dir, 'received'));
    children.push(
      spawnStorescp({ aeTitle: 'ARCHIVE', outputDir: join(dir, 'received'), port: storescpPort }),
    );
    await waitForPort('127.0.0.2', storescpPort);
    forwarder = countingForwarder(storescpPort, seen);
    await new Promise<void>((resolve) => forwarder.listen(forwarderPort, '127.0.0.2', resolve));

    writeFileSync(
      join(dir, 'policy.yaml'),
      `version: 1
rules:
  - { id: dicom-limit, name: More than 4 MB of DICOM per remote, kind: egress-threshold,
      action: block, threshold: ${THRESHOLD}, per: remote, window: hour, when: { protocols: [dicom] } }
`,
    );
    const config = loadConfigText(
      `version: 1
policy: policy.yaml
protected_networks: [127.0.0.1/32]
events: events.jsonl
listeners:
  - { name: archive, type: relay, listen: "127.0.0.1:${relayPort}", upstream: "127.0.0.2:${forwarderPort}", protocol: dicom }
`,
      join(dir, 'gw.yaml'),
      dir,
    );
    gateway = await startGateway({ config, log: testLog() });
  });

  afterAll(async () => {
    await gateway?.stop();
    forwarder?.close();
    for (const child of children) killGroup(child);
    rmSync(dir, { recursive: true, force: true });
  });

  it('aborts both peers within one read of the threshold', async () => {
    const datasets = join(dir, 'datasets');
    execFileSync('/usr/bin/python3', [
      join(process.cwd(), 'scripts/sample/make-datasets.py'),
      datasets,
    ]);
    const files = readdirSync(join(datasets, 'study-1')).map((name) =>
      join(datasets, 'study-1', name),
    );
    const result = await run('storescu', [
      '-aet',
      'MODALITY',
      '-aec',
      'ARCHIVE',
      '127.0.0.1',
      String(relayPort),
      ...files,
    ]).then(
      () => ({ code: 0, output: '' }),
      (error: { code: number; stdout: string; stderr: string }) => ({
        code: error.code,
        output: `${error.stdout}${error.stderr}`,
      }),
    );

    // storescu reports the A-ABORT it received rather than a broken connection.
    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(/Peer aborted Association/i);

    await sleep(300);
    expect(seen.ended).toBe('fin');
    expect(seen.lastPduType).toBe(PDU_TYPE_ABORT);
    expect(seen.bytes).toBeGreaterThan(THRESHOLD - READ_BUFFER_BYTES);
    expect(seen.bytes).toBeLessThanOrEqual(THRESHOLD + READ_BUFFER_BYTES + STORESCU_MAX_PDU);

    const [cut] = byAction(readEvents(eventsPath), 'transfer-cut');
    expect(cut?.rule.id).toBe('dicom-limit');
    expect(cut?.tollgate.enforcement.answer).toBe('a-abort');
    // The event counts the A-ABORT's 10 bytes out: they come from the gateway, not the client.
    expect(cut?.tollgate.enforcement.bytes_to_upstream).toBe(seen.bytes - 10);
  }, 120_000);

  it('rejects the next association as transient', async () => {
    // The remote's meter stays over the threshold for the rest of the hour, then it lifts.
    const result = await run('echoscu', ['-aec', 'ARCHIVE', '127.0.0.1', String(relayPort)]).then(
      () => ({ code: 0, output: '' }),
      (error: { code: number; stdout: string; stderr: string }) => ({
        code: error.code,
        output: `${error.stdout}${error.stderr}`,
      }),
    );

    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(/Association Rejected/i);
    expect(result.output).toMatch(/Rejected Transient/i);
  }, 30_000);
});
