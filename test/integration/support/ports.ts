// Loopback ports for the integration tests: pick a free one, probe one, wait until one listens.

import { connect, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** Returns a TCP port that was free on `host` a moment ago; the caller binds it next. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no port assigned');
  return address.port;
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
