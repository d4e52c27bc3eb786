import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Engine } from '../../../src/engine/engine.js';
import { Pseudonymizer } from '../../../src/events/pseudonymize.js';
import { MemorySink } from '../../../src/events/sink.js';
import { CidrSet } from '../../../src/policy/cidr.js';
import { loadPolicyText } from '../../../src/policy/load.js';
import { PROTOCOLS } from '../../../src/protocols/registry.js';
import {
  canMoveToReusedReadBuffer,
  pooledReadBuffers,
  READ_BUFFER_BYTES,
} from '../../../src/proxy/reused-read-buffer.js';
import { Splice } from '../../../src/proxy/splice.js';
import { RateLimiterRegistry } from '../../../src/proxy/throttle.js';

const POLICY = `version: 1
rules:
  - { id: egress, name: Egress over 1 MB, kind: egress-threshold, action: alert, threshold: 1MB }
`;

const THROTTLE_POLICY = `version: 1
rules:
  - { id: slow, name: Slow down, kind: egress-threshold, action: throttle, rate: 10MB, threshold: 1MB, per: remote, window: hour }
`;

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.close();
  }
});

function listen(server: Server, host = '127.0.0.1'): Promise<number> {
  servers.push(server);
  return new Promise((resolve) => {
    server.listen(0, host, () => {
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : 0);
    });
  });
}

function sha256(parts: Buffer[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest('hex');
}

/** Writes `parts` in order, waiting for 'drain', then ends the socket. */
async function writeAll(socket: Socket, parts: Buffer[]): Promise<void> {
  for (const part of parts) {
    if (!socket.write(part)) await once(socket, 'drain');
  }
  socket.end();
}

/** Reads until FIN, pausing 3 ms every 8 reads so that the sender backs up. */
function readSlowly(socket: Socket): Promise<Buffer[]> {
  const received: Buffer[] = [];
  let reads = 0;
  socket.on('data', (chunk: Buffer) => {
    received.push(chunk);
    if (++reads % 8 === 0) {
      socket.pause();
      setTimeout(() => socket.resume(), 3);
    }
  });
  return once(socket, 'end').then(() => received);
}

/** Random parts of irregular sizes, some larger than one read buffer. */
function randomParts(totalBytes: number): Buffer[] {
  const parts: Buffer[] = [];
  let left = totalBytes;
  for (let i = 0; left > 0; i++) {
    const size = Math.min(left, [1, 700, 16_384, READ_BUFFER_BYTES + 3, 200_000][i % 5]!);
    parts.push(randomBytes(size));
    left -= size;
  }
  return parts;
}

interface Relay {
  port: number;
  server: Server;
  splices: Splice[];
  /** Resolves when the relay's server has no connection left. */
  closed(): Promise<void>;
}

/** Starts a relay like the gateway's: paused accepted sockets, an engine flow and a Splice. */
async function startRelay(
  upstreamPort: number,
  { pauseOnConnect = true, policy = POLICY, upstreamHost = '127.0.0.1' } = {},
): Promise<Relay> {
  const engine = new Engine({
    policy: loadPolicyText(policy, 'test.yaml', '/tmp'),
    protectedNetworks: CidrSet.parse(['127.0.0.1/32']),
    sink: new MemorySink(),
    pseudonymizer: new Pseudonymizer(Buffer.alloc(32, 7), false),
    mode: 'inline',
    protocols: PROTOCOLS,
    observer: { hostname: 'test', version: '0' },
    limits: { meterFlushBytes: 1 },
  });
  const splices: Splice[] = [];
  const server = createServer({ allowHalfOpen: true, pauseOnConnect }, (client) => {
    const upstream = connect({ host: upstreamHost, port: upstreamPort, allowHalfOpen: true });
    upstream.once('connect', () => {
      const flow = engine.openFlow({
        initiator: { ip: '127.0.0.1', port: client.remotePort ?? 0 },
        responder: { ip: upstreamHost, port: upstreamPort },
        ts: Date.now(),
      });
      const splice = new Splice({
        client,
        upstream,
        flow,
        services: {
          engine,
          now: () => Date.now(),
          log: { info: () => {}, warn: () => {} },
          rateLimiters: new RateLimiterRegistry(),
        },
        idleTimeoutMs: 30_000,
        dicom: false,
      });
      splices.push(splice);
    });
  });
  const port = await listen(server);
  return {
    port,
    server,
    splices,
    closed: () =>
      new Promise<void>((resolve) => {
        const poll = () => {
          server.getConnections((_error, count) => {
            if (count === 0) resolve();
            else setTimeout(poll, 10);
          });
        };
        poll();
      }),
  };
}

describe('Splice', () => {
  it('relays both directions intact to a slow reader', async () => {
    const toUpstream = randomParts(12 * 1024 * 1024);
    const toClient = randomParts(6 * 1024 * 1024);
    let upstreamServer!: Server;
    const upstreamReceived = new Promise<Buffer[]>((resolve) => {
      upstreamServer = createServer({ allowHalfOpen: true }, (socket) => {
        resolve(readSlowly(socket));
        void writeAll(socket, toClient);
      });
    });
    const relay = await startRelay(await listen(upstreamServer));

    const client = connect({ host: '127.0.0.1', port: relay.port, allowHalfOpen: true });
    await once(client, 'connect');
    const clientReceived = readSlowly(client);
    await writeAll(client, toUpstream);

    expect(sha256(await clientReceived)).toBe(sha256(toClient));
    expect(sha256(await upstreamReceived)).toBe(sha256(toUpstream));
    expect(relay.splices).toHaveLength(1);
    expect(relay.splices[0]!.readsIntoReusedBuffers).toBe(true);
    expect(relay.splices[0]!.forwarded).toEqual([12 * 1024 * 1024, 6 * 1024 * 1024]);
  });

  it('keeps data the client sent before the splice', async () => {
    const toUpstream = randomParts(3 * 1024 * 1024);
    let upstreamServer!: Server;
    const upstreamReceived = new Promise<Buffer[]>((resolve) => {
      upstreamServer = createServer({ allowHalfOpen: true }, (socket) => {
        resolve(readSlowly(socket));
        socket.end();
      });
    });
    // The accepted socket reads at once, so bytes are buffered by the time the splice starts.
    const relay = await startRelay(await listen(upstreamServer), { pauseOnConnect: false });

    const client = connect({ host: '127.0.0.1', port: relay.port, allowHalfOpen: true });
    client.resume();
    await writeAll(client, toUpstream);

    expect(sha256(await upstreamReceived)).toBe(sha256(toUpstream));
    expect(relay.splices[0]!.readsIntoReusedBuffers).toBe(false);
  });

  it('relays a throttled upload intact', async () => {
    const toUpstream = randomParts(4 * 1024 * 1024);
    let upstreamServer!: Server;
    const upstreamReceived = new Promise<Buffer[]>((resolve) => {
      upstreamServer = createServer({ allowHalfOpen: true }, (socket) => {
        resolve(readSlowly(socket));
        socket.end();
      });
    });
    // Over 1 MB the upload goes on at 10 MB/s, so most chunks wait in the throttle.
    const relay = await startRelay(await listen(upstreamServer, '127.0.0.2'), {
      policy: THROTTLE_POLICY,
      upstreamHost: '127.0.0.2',
    });

    const client = connect({ host: '127.0.0.1', port: relay.port, allowHalfOpen: true });
    await once(client, 'connect');
    client.resume();
    const started = Date.now();
    await writeAll(client, toUpstream);

    expect(sha256(await upstreamReceived)).toBe(sha256(toUpstream));
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(relay.splices[0]!.readsIntoReusedBuffers).toBe(true);
  });

  it('closes the accepted connection and pools buffers', async () => {
    const upstreamServer = createServer({ allowHalfOpen: true }, (socket) => {
      socket.resume();
      socket.on('end', () => socket.end());
    });
    const relay = await startRelay(await listen(upstreamServer));
    const pooledBefore = pooledReadBuffers();
    const client = connect({ host: '127.0.0.1', port: relay.port, allowHalfOpen: true });
    await once(client, 'connect');
    while (relay.splices.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(pooledReadBuffers()).toBe(Math.max(0, pooledBefore - 2));
    client.resume();
    client.end('bye');
    await once(client, 'close');

    await relay.closed();
    // The buffers return once the upstream socket closed too, which can be a moment later.
    for (let i = 0; i < 100 && pooledReadBuffers() < Math.max(2, pooledBefore); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(pooledReadBuffers()).toBe(Math.max(2, pooledBefore));
    const closed = new Promise((resolve) => relay.server.close(resolve));
    await expect(closed).resolves.toBeUndefined();
  });
});

describe('canMoveToReusedReadBuffer', () => {
  it('accepts a paused accepted socket', async () => {
    const accepted = new Promise<Socket>((resolve) => {
      const server = createServer({ pauseOnConnect: true }, resolve);
      void listen(server).then((port) => connect({ host: '127.0.0.1', port }));
    });
    const socket = await accepted;
    expect(canMoveToReusedReadBuffer(socket)).toBe(true);
    socket.destroy();
    expect(canMoveToReusedReadBuffer(socket)).toBe(false);
  });

  it('refuses a socket without a handle property', async () => {
    const accepted = new Promise<Socket>((resolve) => {
      const server = createServer({ pauseOnConnect: true }, resolve);
      void listen(server).then((port) => connect({ host: '127.0.0.1', port }));
    });
    const socket = await accepted;
    const handle = (socket as unknown as { _handle: unknown })._handle;
    (socket as unknown as { _handle: unknown })._handle = undefined;

    expect(canMoveToReusedReadBuffer(socket)).toBe(false);
    (socket as unknown as { _handle: unknown })._handle = handle;
    socket.destroy();
  });

  it('refuses a socket with unread data buffered', async () => {
    const accepted = new Promise<Socket>((resolve) => {
      const server = createServer((socket) => {
        socket.pause();
        resolve(socket);
      });
      void listen(server).then((port) => connect({ host: '127.0.0.1', port }).end('early'));
    });
    const socket = await accepted;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(socket.readableLength).toBeGreaterThan(0);
    expect(canMoveToReusedReadBuffer(socket)).toBe(false);
    socket.destroy();
  });
});
