// Relay listeners whose upstream is refused: a DICOM requester gets an A-ASSOCIATE-RJ, a plain
// TCP client a FIN, and neither connection outlives the refusal, so the gateway stops at once.
// The policy allows only 127.0.0.2, so the upstream 127.0.0.9 is refused before any connect.
// A DICOM relay to a closed port of 127.0.0.2 shows the rejection for an unreachable archive.

import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningGateway, startGateway } from '../../src/cli/run.js';
import { loadConfigText } from '../../src/config/load.js';
import { CLOSE_GRACE_MS } from '../../src/proxy/graceful-close.js';
import { byAction, readEvents } from './support/events.js';
import { testLog } from './support/log.js';
import { freePort } from './support/ports.js';

const run = promisify(execFile);
const DRAIN_TIMEOUT_MS = 20_000;

describe('relay with a refused upstream', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-refusal-'));
  const eventsPath = join(dir, 'events.jsonl');
  const ports = { dicom: 0, plain: 0, unreachable: 0, closed: 0 };
  let gateway: RunningGateway | undefined;

  const blocked = () =>
    readEvents(eventsPath).filter((event) => event.event.action === 'connection-blocked');

  beforeAll(async () => {
    ports.dicom = await freePort();
    ports.plain = await freePort();
    ports.unreachable = await freePort();
    // Nothing listens on this port of the allowed address, so connecting to it is refused.
    ports.closed = await freePort('127.0.0.2');
    writeFileSync(
      join(dir, 'policy.yaml'),
      `version: 1
rules:
  - { id: archive-only, name: Only the archive, kind: destination-not-allowed, action: block,
      allowed: { cidrs: [127.0.0.2/32] } }
`,
    );
    const config = loadConfigText(
      `version: 1
policy: policy.yaml
protected_networks: [127.0.0.1/32]
events: events.jsonl
listeners:
  - { name: archive, type: relay, listen: "127.0.0.1:${ports.dicom}", upstream: "127.0.0.9:104", protocol: dicom }
  - { name: share, type: relay, listen: "127.0.0.1:${ports.plain}", upstream: "127.0.0.9:445" }
  - { name: down, type: relay, listen: "127.0.0.1:${ports.unreachable}", upstream: "127.0.0.2:${ports.closed}", protocol: dicom }
limits: { drain_timeout: ${DRAIN_TIMEOUT_MS / 1000}s }
`,
      join(dir, 'gw.yaml'),
      dir,
    );
    gateway = await startGateway({ config, log: testLog() });
  });

  afterAll(async () => {
    await gateway?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('rejects a DICOM association', async () => {
    // echoscu sends an A-ASSOCIATE-RQ and reports whether it was accepted or rejected.
    const result = await run('echoscu', ['-aec', 'ARCHIVE', '127.0.0.1', String(ports.dicom)]).then(
      () => ({ code: 0, output: '' }),
      (error: { code: number; stdout: string; stderr: string }) => ({
        code: error.code,
        output: `${error.stdout}${error.stderr}`,
      }),
    );

    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(/Association Rejected/i);
    await sleep(200);
    const event = blocked().find((e) => e.destination.port === 104);
    expect(event?.tollgate.enforcement.answer).toBe('a-associate-rj');
    expect(event?.rule.id).toBe('archive-only');
  }, 30_000);

  it('rejects an association to an unreachable archive', async () => {
    const result = await run('echoscu', [
      '-aec',
      'ARCHIVE',
      '127.0.0.1',
      String(ports.unreachable),
    ]).then(
      () => ({ code: 0, output: '' }),
      (error: { code: number; stdout: string; stderr: string }) => ({
        code: error.code,
        output: `${error.stdout}${error.stderr}`,
      }),
    );

    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(/Association Rejected/i);
    expect(result.output).toMatch(/Transient/i);
    await sleep(200);
    const attempt = byAction(readEvents(eventsPath), 'network-flow').find(
      (e) => e.destination.port === ports.closed,
    );
    expect(attempt?.tollgate.flow.end_reason).toBe('unreachable');
    expect(attempt?.source.ip).toBe('127.0.0.1');
  }, 30_000);

  it('closes a plain TCP client', async () => {
    const socket = connect({ host: '127.0.0.1', port: ports.plain, allowHalfOpen: true });
    socket.resume();
    await once(socket, 'end');
    socket.end();
    await once(socket, 'close');

    await sleep(200);
    const event = blocked().find((e) => e.destination.port === 445);
    expect(event?.tollgate.enforcement.answer).toBe('close');
  });

  it('resets a client that never closes', async () => {
    const socket = connect({ host: '127.0.0.1', port: ports.plain, allowHalfOpen: true });
    const failed = new Promise<NodeJS.ErrnoException>((resolve) => socket.once('error', resolve));
    socket.resume();
    await once(socket, 'end');

    // The client keeps its side open. Within the grace time the gateway reads and drops what
    // it sends; after it, the connection is reset and a write fails.
    socket.write('still here');
    await sleep(CLOSE_GRACE_MS + 500);
    socket.write('after the grace time');
    const error = await failed;

    expect(['ECONNRESET', 'EPIPE']).toContain(error.code);
  }, 10_000);

  it(
    'stops without waiting for the drain timeout',
    async () => {
      const started = Date.now();
      await gateway?.stop();
      gateway = undefined;

      expect(Date.now() - started).toBeLessThan(DRAIN_TIMEOUT_MS / 4);
    },
    DRAIN_TIMEOUT_MS + 5000,
  );
});
