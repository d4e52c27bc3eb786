// Loopback ports for the integration tests: pick a free one, probe one, wait until one listens.

import { connect, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** Port numbers already handed out in this test file, on any address. */
const handedOut = new Set<number>();

/**
 * Returns a TCP port that was free on `host` a moment ago, for the caller to bind next. Each
 * number is handed out once per test file, whatever the address. The gateway treats a port it
 * listens on at one loopback address as its own at every loopback address, so a target on
 * 127.0.0.2 must not share a number with a gateway listener on 127.0.0.1.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    const address = server.address();
    await new Promise((resolve) => server.close(resolve));
    if (address === null || typeof address === 'string') throw new Error('no port assigned');
    if (handedOut.has(address.port)) continue;
    handedOut.add(address.port);
    return address.port;
  }
  throw new Error(`no unused port found on ${host} after 20 attempts`);
}

/** Resolves true when a TCP connection to `host:port` succeeds, false when it fails. */
export function isListening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/** Polls `host:port` every 100 ms, `attempts` times, and throws when nothing listens by then. */
export async function waitForPort(host: string, port: number, attempts = 100): Promise<void> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (await isListening(host, port)) return;
    await sleep(100);
  }
  throw new Error(`nothing listens on ${host}:${port}`);
}
