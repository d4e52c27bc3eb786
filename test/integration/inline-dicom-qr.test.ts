// movescu and getscu through a DICOM relay to dcmqrscp. The viewer (127.0.0.1, inside) reaches
// the archive (dcmqrscp on 127.0.0.2) through the relay "archive". For C-MOVE the archive opens
// its own association to the Move Destination: dcmqrscp's HostTable points MOVEDEST at a second
// relay, "move-dest", whose upstream is storescp on 127.0.0.3, so that association passes the
// gateway too. dcmqrscp runs in its default fork mode (3.6.7 crashes after its first
// association with --single-process).

import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningGateway, startGateway } from '../../src/cli/run.js';
import { loadConfigText } from '../../src/config/load.js';
import { datasetSha256, spawnStorescp } from './support/dicom.js';
import { readEvents } from './support/events.js';
import { testLog } from './support/log.js';
import { freePort, waitForPort } from './support/ports.js';
import { killGroup } from './support/processes.js';

const run = promisify(execFile);
const STUDY_UID = '1.2.826.0.1.3680043.10.998.1.5';

describe('C-MOVE and C-GET through a DICOM relay', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-qr-'));
  const eventsPath = join(dir, 'events.jsonl');
  const children: ChildProcess[] = [];
  let gateway: RunningGateway;
  const ports = { archiveRelay: 0, moveRelay: 0, dcmqrscp: 0, storescp: 0 };
  let sentHashes: string[] = [];

  const events = () => readEvents(eventsPath);
  const hashesIn = (folder: string) =>
    readdirSync(folder)
      .map((name) => datasetSha256(join(folder, name)))
      .sort();

  beforeAll(async () => {
    ports.archiveRelay = await freePort('127.0.0.1');
    ports.moveRelay = await freePort('127.0.0.1');
    ports.dcmqrscp = await freePort('127.0.0.2');
    ports.storescp = await freePort('127.0.0.3');

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
    sentHashes = files.map(datasetSha256).sort();

    const db = join(dir, 'db');
    mkdirSync(db);
    writeFileSync(
      join(dir, 'dcmqrscp.cfg'),
      `NetworkTCPPort = ${ports.dcmqrscp}
MaxPDUSize = 16384
MaxAssociations = 16

HostTable BEGIN
movedest = (MOVEDEST, 127.0.0.1, ${ports.moveRelay})
HostTable END

VendorTable BEGIN
VendorTable END

AETable BEGIN
ARCHIVE ${db} RW (200, 1024mb) ANY
AETable END
`,
    );
    execFileSync('dcmqridx', [db, ...files], { stdio: 'ignore' });
    const dcmqrscp = spawn('dcmqrscp', ['-c', join(dir, 'dcmqrscp.cfg'), '-ll', 'error'], {
      detached: true,
      stdio: 'ignore',
      cwd: dir,
    });
    children.push(dcmqrscp);

    mkdirSync(join(dir, 'moved'));
    const storescp = spawnStorescp({
      aeTitle: 'MOVEDEST',
      outputDir: join(dir, 'moved'),
      port: ports.storescp,
      bitPreserving: true,
    });
    children.push(storescp);

    const config = loadConfigText(
      `version: 1
protected_networks: [127.0.0.1/32]
events: events.jsonl
listeners:
  - { name: archive, type: relay, listen: "127.0.0.1:${ports.archiveRelay}", upstream: "127.0.0.2:${ports.dcmqrscp}", protocol: dicom }
  - { name: move-dest, type: relay, listen: "127.0.0.1:${ports.moveRelay}", upstream: "127.0.0.3:${ports.storescp}", protocol: dicom }
limits: { drain_timeout: 2s }
`,
      join(dir, 'gw.yaml'),
      dir,
    );
    gateway = await startGateway({
      config,
      log: testLog(),
    });
    await waitForPort('127.0.0.2', ports.dcmqrscp);
    await waitForPort('127.0.0.3', ports.storescp);
  }, 120_000);

  afterAll(async () => {
    await gateway?.stop();
    for (const child of children) killGroup(child);
    if (process.env.TOLLGATE_KEEP === undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('retrieves a study with getscu byte for byte', async () => {
    const out = join(dir, 'got');
    mkdirSync(out);
    await run('getscu', [
      '-S',
      '-aet',
      'VIEWER',
      '-aec',
      'ARCHIVE',
      '-od',
      out,
      '-k',
      'QueryRetrieveLevel=STUDY',
      '-k',
      `StudyInstanceUID=${STUDY_UID}`,
      '127.0.0.1',
      String(ports.archiveRelay),
    ]);
    expect(hashesIn(out)).toEqual(sentHashes);
    await sleep(300);
    const association = events().find(
      (e) =>
        e.event.action === 'dicom-association' &&
        JSON.stringify(e).includes('VIEWER') &&
        JSON.stringify(e).includes('C-GET-RQ'),
    );
    expect(association).toBeDefined();
    expect(JSON.stringify(association)).toContain(`"instances":${sentHashes.length}`);
  }, 60_000);

  it('moves a study with movescu through both relays', async () => {
    await run('movescu', [
      '-S',
      '-aet',
      'VIEWER',
      '-aec',
      'ARCHIVE',
      '-aem',
      'MOVEDEST',
      '-k',
      'QueryRetrieveLevel=STUDY',
      '-k',
      `StudyInstanceUID=${STUDY_UID}`,
      '127.0.0.1',
      String(ports.archiveRelay),
    ]);
    await sleep(500);
    expect(hashesIn(join(dir, 'moved'))).toEqual(sentHashes);
    const all = events();
    const moveAssociation = all.find(
      (e) =>
        e.event.action === 'dicom-association' &&
        JSON.stringify(e).includes('VIEWER') &&
        JSON.stringify(e).includes('C-MOVE-RQ'),
    );
    expect(moveAssociation).toBeDefined();
    expect(JSON.stringify(moveAssociation)).toContain('MOVEDEST');
    // The archive's association to MOVEDEST passed the second relay and carried the instances.
    const subAssociation = all.find(
      (e) =>
        e.event.action === 'dicom-association' &&
        JSON.stringify(e).includes('"MOVEDEST"') &&
        JSON.stringify(e).includes('C-STORE-RQ'),
    );
    expect(subAssociation).toBeDefined();
    expect(JSON.stringify(subAssociation)).toContain(`"instances":${sentHashes.length}`);
  }, 60_000);
});
