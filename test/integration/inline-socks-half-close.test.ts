// A SOCKS5 client that sends its greeting, its request, its data and a FIN in one go, as
// `nc -N` does, and then waits for the response: the tunnel opens, the data and the FIN reach
// the target, and the target's response comes back.

import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningGateway, startGateway } from '../../src/cli/run.js';
import { loadConfigText } from '../../src/config/load.js';
import { testLog } from './support/log.js';
import { freePort } from './support/ports.js';

describe('SOCKS5 client that half-closes at once', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-socks-fin-'));
  const ports = { socks: 0, target: 0 };
  let gateway: RunningGateway;
  let target: Server;

  beforeAll(async () => {
    ports.socks = await freePort();
    ports.target = await freePort('127.0.0.2');
    // The target responds once it has the whole request, which its FIN marks.
    target = createServer({ allowHalfOpen: true }, (socket) => {
      const received: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => received.push(chunk));
      socket.on('end', () => socket.end(`got ${Buffer.concat(received).toString()}`));
    });
    await new Promise<void>((resolve) => target.listen(ports.target, '127.0.0.2', resolve));
    const config = loadConfigText(
      `version: 1
protected_networks: [127.0.0.1/32]
events: events.jsonl
listeners:
  - { name: socks, type: socks5, listen: "127.0.0.1:${ports.socks}" }
`,
      join(dir, 'gw.yaml'),
      dir,
    );
    gateway = await startGateway({ config, log: testLog() });
  });

  afterAll(async () => {
    await gateway?.stop();
    target?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('passes the data and the FIN on', async () => {
    const greeting = [0x05, 0x01, 0x00];
    // CONNECT to 127.0.0.2:port, IPv4 address type.
    const request = [0x05, 0x01, 0x00, 0x01, 127, 0, 0, 2, ports.target >> 8, ports.target & 0xff];
    const socket = connect({ host: '127.0.0.1', port: ports.socks, allowHalfOpen: true });
    await once(socket, 'connect');
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.end(Buffer.concat([Buffer.from([...greeting, ...request]), Buffer.from('hello')]));
    await once(socket, 'end');

    const reply = Buffer.concat(received);
    // Method reply (no authentication), then the CONNECT reply with REP 0x00 (succeeded).
    expect([...reply.subarray(0, 2)]).toEqual([0x05, 0x00]);
    expect([...reply.subarray(2, 4)]).toEqual([0x05, 0x00]);
    expect(reply.subarray(12).toString()).toBe('got hello');
  });
});
