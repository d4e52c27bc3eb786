// Real clients through the inline gateway beyond curl's basics: SOCKS5 username/password,
// rclone through the HTTP proxy and through SOCKS5 to `rclone serve webdav`, and the gateway's
// protections against slow or greedy clients (connect, idle, header and handshake timeouts,
// connection limits per source and in total), each lowered so the test can reach it.
// Targets listen on 127.0.0.2; names resolve through a lookup function the test gives.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningGateway, startGateway } from '../../src/cli/run.js';
import { loadConfigText } from '../../src/config/load.js';
import { curl } from './support/curl.js';
import { readEvents } from './support/events.js';
import { testLog } from './support/log.js';
import { freePort, waitForPort } from './support/ports.js';
import { killGroup, runTool } from './support/processes.js';

const HOSTS: Record<string, string> = {
  'files.example.org': '127.0.0.2',
  'bucket.s3.amazonaws.com': '127.0.0.2',
  'stalled.example.org': '127.0.0.4',
};

function gatewayLookup(name: string): Promise<Array<{ address: string; family: number }>> {
  const address = HOSTS[name];
  if (address === undefined)
    return Promise.reject(Object.assign(new Error('not found'), { code: 'ENOTFOUND' }));
  return Promise.resolve([{ address, family: 4 }]);
}

const log = testLog;

/** Resolves when the peer closes `socket`, with the time it took; rejects after `limitMs`. */
function closedWithin(socket: Socket, limitMs: number): Promise<number> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`still open after ${limitMs} ms`)), limitMs);
    socket.on('error', () => {});
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(performance.now() - start);
    });
  });
}

async function openSocket(port: number, localAddress = '127.0.0.1'): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port, localAddress });
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  return socket;
}

describe('SOCKS5 authentication and rclone', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-clients-'));
  const eventsPath = join(dir, 'events.jsonl');
  const children: ChildProcess[] = [];
  let gateway: RunningGateway;
  let httpTarget: HttpServer;
  const ports = { http: 0, socks: 0, socksAuth: 0, target: 0, webdav: 0 };

  beforeAll(async () => {
    ports.http = await freePort('127.0.0.1');
    ports.socks = await freePort('127.0.0.1');
    ports.socksAuth = await freePort('127.0.0.1');
    ports.target = await freePort('127.0.0.2');
    ports.webdav = await freePort('127.0.0.2');

    httpTarget = createHttpServer((_req, res) => res.end('hello from the target\n'));
    await new Promise<void>((resolve) => httpTarget.listen(ports.target, '127.0.0.2', resolve));

    mkdirSync(join(dir, 'served'));
    mkdirSync(join(dir, 'upload'));
    for (let i = 0; i < 3; i++)
      writeFileSync(join(dir, 'upload', `report-${i}.pdf`), Buffer.alloc(50_000 + i, 0x25));
    const webdav = spawn(
      'rclone',
      ['serve', 'webdav', join(dir, 'served'), '--addr', `127.0.0.2:${ports.webdav}`],
      { detached: true, stdio: 'ignore' },
    );
    children.push(webdav);

    writeFileSync(
      join(dir, 'policy.yaml'),
      `version: 1
rules:
  - { id: cloud-block, name: Cloud storage blocked, kind: cloud-storage, action: block,
      destinations: { hosts: ["*.amazonaws.com"] } }
`,
    );
    const config = loadConfigText(
      `version: 1
policy: policy.yaml
protected_networks: [127.0.0.1/32]
events: events.jsonl
# URL paths are pseudonymized by default; the test finds its uploads by path.
include_phi: true
listeners:
  - { name: web, type: http-proxy, listen: "127.0.0.1:${ports.http}" }
  - { name: socks, type: socks5, listen: "127.0.0.1:${ports.socks}" }
  - { name: socks-auth, type: socks5, listen: "127.0.0.1:${ports.socksAuth}",
      users: [{ username: alice, password: "s3cret pass" }] }
limits: { drain_timeout: 2s }
`,
      join(dir, 'gw.yaml'),
      dir,
    );
    gateway = await startGateway({ config, log: log(), lookup: gatewayLookup });
    await waitForPort('127.0.0.2', ports.webdav);
  }, 30_000);

  afterAll(async () => {
    await gateway?.stop();
    for (const child of children) killGroup(child);
    httpTarget?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves SOCKS5 with the right password', async () => {
    const result = await curl([
      '--socks5-hostname',
      `127.0.0.1:${ports.socksAuth}`,
      '--proxy-user',
      'alice:s3cret pass',
      `http://files.example.org:${ports.target}/`,
    ]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('hello from the target\n');
  });

  it('serves credentials in the proxy URL', async () => {
    const result = await curl([
      '--socks5-hostname',
      `alice:s3cret%20pass@127.0.0.1:${ports.socksAuth}`,
      `http://files.example.org:${ports.target}/`,
    ]);
    expect(result.stdout).toBe('hello from the target\n');
  });

  it('rejects a wrong SOCKS5 password', async () => {
    const result = await curl([
      '--socks5-hostname',
      `127.0.0.1:${ports.socksAuth}`,
      '--proxy-user',
      'alice:wrong',
      `http://files.example.org:${ports.target}/`,
    ]);
    expect(result.code).toBe(97);
    // curl 7.88 prints "User was rejected by the SOCKS5 server (1 1)."
    expect(result.stderr).toMatch(/rejected/i);
  });

  it('rejects a SOCKS5 client without credentials', async () => {
    const result = await curl([
      '--socks5-hostname',
      `127.0.0.1:${ports.socksAuth}`,
      `http://files.example.org:${ports.target}/`,
    ]);
    expect(result.code).toBe(97);
    expect(result.stdout).toBe('');
  });

  it('copies files with rclone through the HTTP proxy', async () => {
    const result = await runTool(
      'rclone',
      [
        'copy',
        join(dir, 'upload'),
        ':webdav:via-http',
        '--webdav-url',
        `http://files.example.org:${ports.webdav}/`,
      ],
      { HTTP_PROXY: `http://127.0.0.1:${ports.http}`, http_proxy: '', NO_PROXY: '', no_proxy: '' },
    );
    expect(result.code, result.stderr).toBe(0);
    expect(readdirSync(join(dir, 'served', 'via-http')).sort()).toEqual([
      'report-0.pdf',
      'report-1.pdf',
      'report-2.pdf',
    ]);
    await sleep(200);
    const puts = readEvents(eventsPath).filter(
      (e) => e.event.action === 'http-request' && e.http?.request?.method === 'PUT',
    );
    expect(puts.length).toBe(3);
    expect(JSON.stringify(puts[0])).toContain('rclone/');
    expect(JSON.stringify(puts[0])).toContain('files.example.org');
  }, 60_000);

  it('copies files with rclone through SOCKS5', async () => {
    const result = await runTool(
      'rclone',
      [
        'copy',
        join(dir, 'upload'),
        ':webdav:via-socks',
        '--webdav-url',
        `http://files.example.org:${ports.webdav}/`,
      ],
      // Go's net/http (rclone 1.60) reads HTTP_PROXY, not ALL_PROXY, and accepts socks5 URLs
      // there; it passes the name to the proxy unresolved, as socks5h does.
      {
        HTTP_PROXY: `socks5://127.0.0.1:${ports.socks}`,
        http_proxy: '',
        NO_PROXY: '',
        no_proxy: '',
      },
    );
    expect(result.code, result.stderr).toBe(0);
    expect(readdirSync(join(dir, 'served', 'via-socks')).length).toBe(3);
    await sleep(200);
    // rclone cannot resolve files.example.org itself, so these requests went through SOCKS5.
    const socksPuts = readEvents(eventsPath).filter(
      (e) =>
        e.event.action === 'http-request' &&
        e.http?.request?.method === 'PUT' &&
        JSON.stringify(e).includes('via-socks'),
    );
    expect(socksPuts.length).toBe(3);
  }, 60_000);

  it('refuses rclone to a cloud-storage name', async () => {
    const result = await runTool(
      'rclone',
      [
        'copy',
        join(dir, 'upload'),
        ':webdav:blocked',
        '--webdav-url',
        `http://bucket.s3.amazonaws.com:${ports.webdav}/`,
        '--retries',
        '1',
        '--low-level-retries',
        '1',
      ],
      { HTTP_PROXY: `http://127.0.0.1:${ports.http}`, http_proxy: '', NO_PROXY: '', no_proxy: '' },
    );
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('403');
    expect(() => readdirSync(join(dir, 'served', 'blocked'))).toThrow();
  }, 60_000);
});

describe('gateway limits against slow and greedy clients', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-limits-'));
  const eventsPath = join(dir, 'events.jsonl');
  const servers: Server[] = [];
  let stalled: ChildProcess | null = null;
  let gateway: RunningGateway;
  /** A second gateway with low connection limits and the default timeouts. */
  let greedy: RunningGateway;
  const ports = { http: 0, socks: 0, relay: 0, echo: 0, stalled: 0, greedySocks: 0 };

  beforeAll(async () => {
    ports.http = await freePort('127.0.0.1');
    ports.socks = await freePort('127.0.0.1');
    ports.relay = await freePort('127.0.0.1');
    ports.echo = await freePort('127.0.0.2');
    ports.stalled = await freePort('127.0.0.4');
    ports.greedySocks = await freePort('127.0.0.1');

    const echo = createServer((socket) => {
      socket.on('error', () => {});
      socket.pipe(socket);
    });
    await new Promise<void>((resolve) => echo.listen(ports.echo, '127.0.0.2', resolve));
    servers.push(echo);

    // A listener that never accepts: once its backlog of one is full the kernel drops further
    // SYNs, so a connect to it hangs until the client's own timeout.
    stalled = spawn(
      '/usr/bin/python3',
      [
        '-c',
        `import socket, time
s = socket.socket(); s.bind(("127.0.0.4", ${ports.stalled})); s.listen(0)
fill = []
for _ in range(3):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(("127.0.0.4", ${ports.stalled}))
    except BlockingIOError: pass
    fill.append(c)
print("ready", flush=True)
time.sleep(600)`,
      ],
      { detached: true, stdio: ['ignore', 'pipe', 'ignore'] },
    );
    await new Promise<void>((resolve) => stalled!.stdout!.once('data', () => resolve()));

    const config = loadConfigText(
      `version: 1
protected_networks: [127.0.0.1/32, 127.0.0.10/32]
events: events.jsonl
listeners:
  - { name: web, type: http-proxy, listen: "127.0.0.1:${ports.http}" }
  - { name: socks, type: socks5, listen: "127.0.0.1:${ports.socks}" }
  - { name: echo, type: relay, listen: "127.0.0.1:${ports.relay}", upstream: "127.0.0.2:${ports.echo}" }
limits:
  connect_timeout: 300ms
  idle_timeout: 400ms
  header_timeout: 300ms
  handshake_timeout: 300ms
  drain_timeout: 1s
`,
      join(dir, 'gw.yaml'),
      dir,
    );
    gateway = await startGateway({ config, log: log(), lookup: gatewayLookup });
    const greedyConfig = loadConfigText(
      `version: 1
protected_networks: [127.0.0.1/32, 127.0.0.10/32]
events: greedy-events.jsonl
listeners:
  - { name: socks, type: socks5, listen: "127.0.0.1:${ports.greedySocks}" }
limits: { max_connections: 3, max_connections_per_source: 2, drain_timeout: 1s }
`,
      join(dir, 'greedy.yaml'),
      dir,
    );
    greedy = await startGateway({ config: greedyConfig, log: log(), lookup: gatewayLookup });
  }, 30_000);

  afterAll(async () => {
    await gateway?.stop();
    await greedy?.stop();
    killGroup(stalled);
    for (const server of servers) server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('times out a connect to a stalled upstream', async () => {
    const failuresBefore = gateway.gateway.stats.upstreamFailures;
    const started = performance.now();
    const result = await curl([
      '--socks5-hostname',
      `127.0.0.1:${ports.socks}`,
      `http://stalled.example.org:${ports.stalled}/`,
    ]);
    const elapsed = performance.now() - started;
    expect(result.code).toBe(97);
    // SOCKS reply 4: host unreachable, which the gateway answers for a connect timeout.
    expect(result.stderr).toContain('(4)');
    expect(elapsed).toBeGreaterThanOrEqual(300);
    expect(elapsed).toBeLessThan(3000);
    expect(gateway.gateway.stats.upstreamFailures).toBe(failuresBefore + 1);
  });

  it('answers 502 for a connect timeout through the HTTP proxy', async () => {
    const result = await curl([
      '-x',
      `http://127.0.0.1:${ports.http}`,
      '-w',
      '%{http_code}',
      `http://stalled.example.org:${ports.stalled}/`,
    ]);
    expect(result.stdout).toBe(
      `tollgate: cannot connect to stalled.example.org:${ports.stalled}: ETIMEDOUT\n502`,
    );
  });

  it('closes an idle relayed connection', async () => {
    const socket = await openSocket(ports.relay);
    socket.write('ping');
    const echoed = await new Promise<string>((resolve) =>
      socket.once('data', (data: Buffer) => resolve(data.toString())),
    );
    expect(echoed).toBe('ping');
    const closedAfter = await closedWithin(socket, 3000);
    expect(closedAfter).toBeGreaterThanOrEqual(300);
    await sleep(100);
    const flows = readEvents(eventsPath).filter(
      (e) => e.event.action === 'network-flow' && e.destination?.port === ports.echo,
    );
    expect(JSON.stringify(flows)).toContain('idle-timeout');
  });

  it('closes an HTTP client that never finishes its headers', async () => {
    const socket = await openSocket(ports.http);
    socket.write(`GET http://files.example.org:${ports.echo}/ HTTP/1.1\r\nHost: files`);
    const answer: Buffer[] = [];
    socket.on('data', (data: Buffer) => answer.push(data));
    const closedAfter = await closedWithin(socket, 3000);
    expect(closedAfter).toBeGreaterThanOrEqual(250);
    // Node answers a header timeout with 408 Request Timeout before closing.
    expect(Buffer.concat(answer).toString()).toMatch(/^HTTP\/1\.1 408/);
  });

  it('closes a SOCKS5 client that stalls in the handshake', async () => {
    const socket = await openSocket(ports.socks);
    socket.write(Buffer.from([0x05, 0x01]));
    const closedAfter = await closedWithin(socket, 3000);
    expect(closedAfter).toBeGreaterThanOrEqual(250);
  });

  it('leaves a slow upstream connect to connect_timeout', async () => {
    // The SOCKS request is complete, so the handshake timeout no longer applies.
    const socket = await openSocket(ports.socks);
    const replies: Buffer[] = [];
    socket.on('data', (data: Buffer) => replies.push(data));
    socket.write(Buffer.from([0x05, 0x01, 0x00]));
    const request = Buffer.from([0x05, 0x01, 0x00, 0x01, 127, 0, 0, 4, 0, 0]);
    request.writeUInt16BE(ports.stalled, 8);
    socket.write(request);
    await closedWithin(socket, 3000);
    const bytes = Buffer.concat(replies);
    expect([...bytes.subarray(0, 2)]).toEqual([0x05, 0x00]);
    // Reply 4, host unreachable, is the answer to a connect timeout.
    expect(bytes[3]).toBe(0x04);
  });

  it('limits connections per source and in total', async () => {
    const stats = greedy.gateway.stats;
    const port = ports.greedySocks;
    // SOCKS5 clients that send nothing stay open until the handshake timeout (10 s default).
    const first = await openSocket(port);
    const second = await openSocket(port);
    const thirdFromSource = await openSocket(port);
    await closedWithin(thirdFromSource, 1000);
    expect(stats.overLimit).toBe(1);

    const otherSource = await openSocket(port, '127.0.0.10');
    const overTotal = await openSocket(port, '127.0.0.10');
    await closedWithin(overTotal, 1000);
    expect(stats.overLimit).toBe(2);
    expect(first.destroyed).toBe(false);
    expect(otherSource.destroyed).toBe(false);

    for (const socket of [first, second, otherSource]) socket.destroy();
    await sleep(100);
    const again = await openSocket(port);
    const reply = new Promise<Buffer>((resolve, reject) => {
      again.once('data', resolve);
      setTimeout(() => reject(new Error('no SOCKS5 greeting reply')), 2000);
    });
    again.write(Buffer.from([0x05, 0x01, 0x00]));
    expect([...(await reply)]).toEqual([0x05, 0x00]);
    again.destroy();
  });
});
