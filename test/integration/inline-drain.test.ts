// SIGTERM's drain with a connection that outlives the deadline: the gateway resets it, ends its
// flow as `shutdown` and still writes the flow's event before it stops.

import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startGateway } from '../../src/cli/run.js';
import { loadConfigText } from '../../src/config/load.js';
import { byAction, readEvents } from './support/events.js';
import { testLog } from './support/log.js';
import { freePort } from './support/ports.js';

describe('gateway drain deadline', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-drain-'));
  const upstreamSockets: Socket[] = [];
  const upstream = createServer((socket) => {
    upstreamSockets.push(socket);
    socket.on('error', () => {});
    socket.resume();
  });

  afterAll(() => {
    upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('resets a lingering connection as shutdown', async () => {
    const upstreamPort = await freePort('127.0.0.2');
    await new Promise<void>((resolve) => upstream.listen(upstreamPort, '127.0.0.2', resolve));
    const relayPort = await freePort();
    const config = loadConfigText(
      `version: 1
protected_networks: [127.0.0.1/32]
events: events.jsonl
listeners:
  - { name: share, type: relay, listen: "127.0.0.1:${relayPort}", upstream: "127.0.0.2:${upstreamPort}" }
limits: { drain_timeout: 1s }
`,
      join(dir, 'gw.yaml'),
      dir,
    );
    const gateway = await startGateway({ config, log: testLog() });

    const client = connect({ host: '127.0.0.1', port: relayPort });
    const failed = new Promise<NodeJS.ErrnoException>((resolve) => client.once('error', resolve));
    await once(client, 'connect');
    client.write('open and idle');
    while (upstreamSockets.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));

    const started = Date.now();
    await gateway.stop();

    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect((await failed).code).toBe('ECONNRESET');
    const [flow] = byAction(readEvents(join(dir, 'events.jsonl')), 'network-flow');
    expect(flow?.tollgate.flow.end_reason).toBe('shutdown');
    expect(flow?.source.bytes).toBe('open and idle'.length);
  }, 20_000);
});
