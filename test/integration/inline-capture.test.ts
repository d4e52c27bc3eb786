// The analyzers see the same bytes inline as on the wire: one storescu association through the
// DICOM relay and one curl request through the HTTP proxy are captured with tcpdump on the
// gateway's upstream side, the capture goes through `runSniff`, and the dicom-association and
// http-request events of both front-ends must match apart from timing, ids and the gateway's
// ephemeral source port. Servers listen on 127.0.0.2; the gateway's clients come from 127.0.0.1.

import { type ChildProcess, execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningGateway, startGateway } from '../../src/cli/run.js';
import { runSniff } from '../../src/cli/sniff.js';
import { loadConfigText } from '../../src/config/load.js';
import { LoopbackCapture } from './support/capture.js';
import { spawnStorescp } from './support/dicom.js';
import { type Event, readEvents } from './support/events.js';
import { testLog } from './support/log.js';
import { freePort, waitForPort } from './support/ports.js';
import { killGroup } from './support/processes.js';

const run = promisify(execFile);

/** Fields that differ between the front-ends by nature: time, ids, observer, ephemeral port. */
const VARYING = [
  '@timestamp',
  'event.id',
  'event.created',
  'event.start',
  'event.end',
  'event.duration',
  'observer',
  'network.community_id',
  'source.port',
  'client.port',
  'tollgate.flow_id',
  'tollgate.flow',
];

function comparable(event: Event): Event {
  const copy = structuredClone(event);
  for (const path of VARYING) {
    const keys = path.split('.');
    let node: Event | undefined = copy;
    for (const key of keys.slice(0, -1)) node = node?.[key];
    if (node !== undefined) delete node[keys[keys.length - 1]!];
  }
  return copy;
}

function comparableList(events: Event[], action: string): Event[] {
  return events
    .filter((event) => event.event?.action === action)
    .map(comparable)
    .sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
}

describe('inline events match a capture of the same transfer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-inline-capture-'));
  const eventsPath = join(dir, 'events.jsonl');
  const children: ChildProcess[] = [];
  let gateway: RunningGateway;
  let httpTarget: HttpServer;
  const ports = { relay: 0, proxy: 0, storescp: 0, target: 0 };

  beforeAll(async () => {
    ports.relay = await freePort('127.0.0.1');
    ports.proxy = await freePort('127.0.0.1');
    ports.storescp = await freePort('127.0.0.2');
    ports.target = await freePort('127.0.0.2');

    httpTarget = createHttpServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('stored\n'));
    });
    await new Promise<void>((resolve) => httpTarget.listen(ports.target, '127.0.0.2', resolve));

    mkdirSync(join(dir, 'received'));
    const storescp = spawnStorescp({
      aeTitle: 'ARCHIVE',
      outputDir: join(dir, 'received'),
      port: ports.storescp,
    });
    children.push(storescp);

    const config = loadConfigText(
      `version: 1
protected_networks: [127.0.0.1/32]
events: events.jsonl
include_phi: true
listeners:
  - { name: web, type: http-proxy, listen: "127.0.0.1:${ports.proxy}" }
  - { name: archive, type: relay, listen: "127.0.0.1:${ports.relay}", upstream: "127.0.0.2:${ports.storescp}", protocol: dicom }
limits: { drain_timeout: 2s }
`,
      join(dir, 'gw.yaml'),
      dir,
    );
    gateway = await startGateway({
      config,
      log: testLog(),
    });
    await waitForPort('127.0.0.2', ports.storescp);
  }, 60_000);

  afterAll(async () => {
    await gateway?.stop();
    for (const child of children) killGroup(child);
    httpTarget?.close();
    if (process.env.TOLLGATE_KEEP === undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('gives the same DICOM and HTTP events', async () => {
    const capturePath = join(dir, 'upstream.pcap');
    const tcpdump = new LoopbackCapture(
      capturePath,
      `host 127.0.0.2 and (tcp port ${ports.storescp} or tcp port ${ports.target})`,
    );
    children.push(tcpdump.child);
    await tcpdump.waitForListening();
    expect(tcpdump.stderr).toContain('listening on');

    const datasets = join(dir, 'datasets');
    execFileSync(
      '/usr/bin/python3',
      [join(process.cwd(), 'scripts/sample/make-datasets.py'), datasets],
      {
        stdio: 'ignore',
      },
    );
    const files = readdirSync(join(datasets, 'study-5')).map((name) =>
      join(datasets, 'study-5', name),
    );
    await run('storescu', [
      '-aet',
      'MODALITY',
      '-aec',
      'ARCHIVE',
      '127.0.0.1',
      String(ports.relay),
      ...files,
    ]);
    const upload = join(dir, 'upload.bin');
    writeFileSync(upload, Buffer.alloc(300_000, 0x42));
    await run('curl', [
      '-sS',
      '--max-time',
      '20',
      '-x',
      `http://127.0.0.1:${ports.proxy}`,
      '-H',
      'Content-Type: application/octet-stream',
      '-T',
      upload,
      `http://127.0.0.2:${ports.target}/upload?name=report`,
    ]);

    await tcpdump.interrupt();
    expect(tcpdump.stderr).toMatch(/^0 packets dropped by kernel/m);

    const sniffEventsPath = join(dir, 'sniff.jsonl');
    const status = await runSniff(
      { input: capturePath, protected: '127.0.0.1/32', events: sniffEventsPath, includePhi: true },
      new PassThrough(),
      new PassThrough(),
    );
    expect(status).toBe(0);
    await sleep(200);
    const gatewayEvents = readEvents(eventsPath);
    const sniffEvents = readEvents(sniffEventsPath);

    for (const action of ['dicom-association', 'http-request']) {
      const inline = comparableList(gatewayEvents, action);
      expect(inline.length, action).toBe(1);
      expect(inline, action).toEqual(comparableList(sniffEvents, action));
    }
    expect(JSON.stringify(comparableList(gatewayEvents, 'dicom-association'))).toContain(
      `"instances":${files.length}`,
    );
  }, 120_000);
});
