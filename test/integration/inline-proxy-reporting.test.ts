// What the HTTP proxy and SOCKS5 listener report to clients, events and the log. The HTTP tests
// cover the byte counts of a cut upload and the responses to a non-http scheme, to requests
// without Host and to requests Node's parser rejects. The SOCKS tests expect one log line per
// rejected request. Targets listen on 127.0.0.2, 127.0.0.3 and ::1; clients come from
// 127.0.0.1, the only protected address.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningGateway, startGateway } from '../../src/cli/run.js';
import { loadConfigText } from '../../src/config/load.js';
import { curl } from './support/curl.js';
import { type Event, readEvents } from './support/events.js';
import { freePort } from './support/ports.js';

/** A lowered block threshold, so a 2 MB upload is cut a third of the way through. */
const THRESHOLD = 700_000;
const UPLOAD_BYTES = 2_000_000;

type LogLine = Record<string, any>;

/** Creates a pino logger that appends each line, parsed, to `lines`. */
function capturingLog() {
  const lines: LogLine[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { log, lines };
}

function listen(server: Server | HttpServer, host: string, port: number): Promise<void> {
  return new Promise((resolve) => server.listen(port, host, resolve));
}

/**
 * Connects to `port` on 127.0.0.1, writes `request`, and resolves with everything received
 * once the gateway closed the connection. With `endAfterWrite` the client half-closes at once,
 * as `printf ... | nc -N` does.
 */
function exchange(port: number, request: Buffer | string, endAfterWrite = true): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket: Socket = connect({ host: '127.0.0.1', port }, () => {
      if (endAfterWrite) socket.end(request);
      else socket.write(request);
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => socket.end());
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

describe('HTTP proxy reporting', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-reporting-'));
  const eventsPath = join(dir, 'events.jsonl');
  const { log, lines } = capturingLog();
  const servers: Array<Server | HttpServer> = [];
  const ports = { proxy: 0, sink: 0, echo: 0 };
  const sinkReceived: number[] = [];
  const echoHosts: Array<string | undefined> = [];
  let gateway: RunningGateway;

  const viaProxy = (args: string[]) =>
    curl(['-x', `http://127.0.0.1:${ports.proxy}`, '-w', '%{http_code}', ...args]);
  const linesSince = (start: number) => lines.slice(start);

  beforeAll(async () => {
    ports.proxy = await freePort('127.0.0.1');
    ports.sink = await freePort('127.0.0.2');
    ports.echo = await freePort('127.0.0.3');

    // A raw TCP sink: counts every byte of each connection (request head and body) until the
    // connection closes, whether by FIN or by reset.
    const sink = createServer((socket) => {
      let received = 0;
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
      });
      socket.on('error', () => {});
      socket.on('close', () => sinkReceived.push(received));
    });
    await listen(sink, '127.0.0.2', ports.sink);
    servers.push(sink);

    // An HTTP/1.1 target that records the Host header of each request. It is on another address
    // than the sink, because the cut makes the sink's address refused for the rest of the hour.
    const echo = createHttpServer((req, res) => {
      echoHosts.push(req.headers.host);
      res.end(`hello ${req.url}\n`);
    });
    await listen(echo, '127.0.0.3', ports.echo);
    servers.push(echo);

    writeFileSync(
      join(dir, 'policy.yaml'),
      `version: 1
rules:
  - { id: upload-limit, name: More than 700 kB per remote, kind: egress-threshold, action: block,
      threshold: ${THRESHOLD}, per: remote, window: hour, when: { protocols: [http] } }
`,
    );
    const config = loadConfigText(
      `version: 1
policy: policy.yaml
protected_networks: [127.0.0.1/32]
events: events.jsonl
listeners:
  - { name: web, type: http-proxy, listen: "127.0.0.1:${ports.proxy}" }
limits: { drain_timeout: 2s }
`,
      join(dir, 'gw.yaml'),
      dir,
    );
    gateway = await startGateway({ config, log });
  });

  afterAll(async () => {
    await gateway?.stop();
    for (const server of servers) server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('counts only forwarded bytes of a cut upload', async () => {
    const file = join(dir, 'upload.bin');
    writeFileSync(file, Buffer.alloc(UPLOAD_BYTES, 0x61));
    const result = await viaProxy([
      '-H',
      'Expect:',
      '--data-binary',
      `@${file}`,
      `http://127.0.0.2:${ports.sink}/upload`,
    ]);
    expect(result.code).not.toBe(0);
    await sleep(200);

    const cuts = readEvents(eventsPath).filter(
      (event: Event) => event.event.action === 'transfer-cut',
    );
    expect(cuts).toHaveLength(1);
    const enforcement = cuts[0]!.tollgate.enforcement;
    expect(sinkReceived).toHaveLength(1);
    const received = sinkReceived[0]!;
    // The chunk that crosses the threshold is metered but never written, so what was written
    // stays at or under the threshold.
    expect(enforcement.bytes_to_upstream).toBeLessThanOrEqual(THRESHOLD);
    expect(enforcement.bytes_to_upstream).toBeGreaterThan(THRESHOLD / 2);
    // The reset discards bytes still in the kernel's send buffer, so the sink can receive less
    // than was written, never more.
    expect(received).toBeLessThanOrEqual(enforcement.bytes_to_upstream);
    expect(received).toBeGreaterThan(0);
    expect(enforcement.bytes_to_client).toBe(0);
  });

  it('answers a non-http scheme with 400', async () => {
    const result = await viaProxy([`ftp://127.0.0.3:${ports.echo}/x`]);
    expect(result.stdout).toBe(
      'tollgate: scheme ftp is not supported; this proxy forwards only http:// requests, and https goes through CONNECT\n400',
    );
  });

  it('forwards HTTP/1.0 absolute-form without Host', async () => {
    const before = echoHosts.length;
    const response = await exchange(
      ports.proxy,
      `GET http://127.0.0.3:${ports.echo}/old HTTP/1.0\r\n\r\n`,
      false,
    );
    const text = response.toString('latin1');
    expect(text.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    expect(text.endsWith('hello /old\n')).toBe(true);
    expect(echoHosts.slice(before)).toEqual([`127.0.0.3:${ports.echo}`]);
  });

  it('sends the target as Host upstream', async () => {
    const before = echoHosts.length;
    const response = await exchange(
      ports.proxy,
      `GET http://127.0.0.3:${ports.echo}/named HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n`,
      false,
    );
    expect(response.toString('latin1').split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    expect(echoHosts.slice(before)).toEqual([`127.0.0.3:${ports.echo}`]);
  });

  it('names an invalid absolute-form URL', async () => {
    for (const target of ['http://[::1%25lo]:80/', 'http://127.0.0.3:112575/']) {
      const response = await exchange(
        ports.proxy,
        `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      );
      const text = response.toString('latin1');
      expect(text.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
      expect(text).toContain('tollgate: invalid request URL');
    }
  });

  it('rejects HTTP/1.1 without Host with a reason', async () => {
    const start = lines.length;
    const response = await exchange(
      ports.proxy,
      `GET http://127.0.0.3:${ports.echo}/ HTTP/1.1\r\nConnection: close\r\n\r\n`,
    );
    const text = response.toString('latin1');
    expect(text.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
    expect(text.endsWith('tollgate: HTTP/1.1 requests need a Host header\n')).toBe(true);
    const logged = linesSince(start).filter(
      (line) => line.msg === 'HTTP/1.1 request without a Host header rejected',
    );
    expect(logged).toHaveLength(1);
    expect(logged[0]!.client).toBe('127.0.0.1');
    expect(logged[0]!.upstream).toBe(`127.0.0.3:${ports.echo}`);
  });

  it('logs parser rejections at 1, 2, 4 ...', async () => {
    const start = lines.length;
    for (let i = 0; i < 5; i++) {
      const response = await exchange(ports.proxy, 'BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n');
      expect(response.toString('latin1').split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
    }
    const logged = linesSince(start).filter(
      (line) => line.msg === 'HTTP request rejected before it was parsed',
    );
    expect(logged.map((line) => line.clientErrors)).toEqual([1, 2, 4]);
    expect(logged[0]!.code).toBe('HPE_INVALID_METHOD');
    expect(logged[0]!.client).toBe('127.0.0.1');
    expect(logged[0]!.status).toBe(400);
    expect(logged[0]!.listener).toBe('web');
  });

  it('answers an oversized head with 431', async () => {
    const start = lines.length;
    // Over Node's default --max-http-header-size of 16 KiB.
    const response = await exchange(
      ports.proxy,
      `GET http://127.0.0.3:${ports.echo}/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`,
    );
    expect(response.toString('latin1').split('\r\n')[0]).toBe(
      'HTTP/1.1 431 Request Header Fields Too Large',
    );
    // The sixth client error is not a power of two, so only the count moves on.
    const logged = linesSince(start).filter(
      (line) => line.msg === 'HTTP request rejected before it was parsed',
    );
    expect(logged).toEqual([]);
  });

  it('brackets an IPv6 upstream in the 502 and the log', async () => {
    const closedPort = await freePort('::1');
    const start = lines.length;
    const result = await viaProxy([`http://[::1]:${closedPort}/`]);
    expect(result.stdout).toBe(
      `tollgate: cannot connect to [::1]:${closedPort}: ECONNREFUSED\n502`,
    );
    const logged = linesSince(start).find((line) => line.msg === 'upstream unreachable');
    expect(logged?.upstream).toBe(`[::1]:${closedPort}`);
  });

  it('brackets an IPv6 CONNECT target in the 502', async () => {
    const closedPort = await freePort('::1');
    const response = await exchange(
      ports.proxy,
      `CONNECT [::1]:${closedPort} HTTP/1.1\r\nHost: [::1]:${closedPort}\r\n\r\n`,
    );
    const text = response.toString('latin1');
    expect(text.split('\r\n')[0]).toBe('HTTP/1.1 502 Bad Gateway');
    expect(text.endsWith(`tollgate: cannot connect to [::1]:${closedPort}: ECONNREFUSED\n`)).toBe(
      true,
    );
  });
});

describe('SOCKS5 rejection logs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-socks-logs-'));
  const { log, lines } = capturingLog();
  const ports = { socks: 0, closed: 0 };
  let gateway: RunningGateway;

  const GREETING = [0x05, 0x01, 0x00];
  const LOOKUP_MS = 100;
  /** A CONNECT request (VER 5, CMD, RSV 0) for an IPv4 address: ATYP 1, 4 bytes, port. */
  const ipv4Request = (command: number, port: number) => [
    0x05,
    command,
    0x00,
    0x01,
    127,
    0,
    0,
    3,
    port >> 8,
    port & 0xff,
  ];
  /** A CONNECT request for a domain name: ATYP 3, length, name, port. */
  const domainRequest = (name: string, port: number) => [
    0x05,
    0x01,
    0x00,
    0x03,
    name.length,
    ...Buffer.from(name, 'latin1'),
    port >> 8,
    port & 0xff,
  ];

  /** Open connections to the SOCKS listener, as the server counts them. */
  const openConnections = () =>
    new Promise<number>((resolve, reject) =>
      gateway.gateway.servers[0]!.server.getConnections((error, count) =>
        error ? reject(error) : resolve(count),
      ),
    );

  beforeAll(async () => {
    ports.socks = await freePort('127.0.0.1');
    ports.closed = await freePort('127.0.0.3');
    writeFileSync(
      join(dir, 'policy.yaml'),
      `version: 1
lists:
  cloud: { hosts: ["*.amazonaws.com"] }
rules:
  - { id: cloud-block, name: Cloud storage blocked, kind: cloud-storage, action: block,
      destinations: { lists: [cloud] } }
`,
    );
    const config = loadConfigText(
      `version: 1
policy: policy.yaml
protected_networks: [127.0.0.1/32]
events: events.jsonl
listeners:
  - { name: socks, type: socks5, listen: "127.0.0.1:${ports.socks}" }
limits: { drain_timeout: 2s }
`,
      join(dir, 'gw.yaml'),
      dir,
    );
    // The lookup maps every name to loopback, so nothing is resolved outside the machine. It
    // takes LOOKUP_MS, so a test can send bytes while the gateway is still connecting.
    const lookup = async () => {
      await sleep(LOOKUP_MS);
      return [{ address: '127.0.0.3', family: 4 }];
    };
    gateway = await startGateway({ config, log, lookup });
  });

  afterAll(async () => {
    await gateway?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Sends `bytes` once with the client half-closing right after them (as `printf | nc -N` does)
   * and once with the client waiting for the gateway to close, and returns the gateway's
   * replies and log lines of each run.
   */
  async function runBothWays(bytes: number[]) {
    const runs: Array<{ reply: Buffer; logged: LogLine[] }> = [];
    for (const endAfterWrite of [true, false]) {
      const start = lines.length;
      const reply = await exchange(ports.socks, Buffer.from(bytes), endAfterWrite);
      // A spurious line would follow the close within a few event-loop turns.
      await sleep(50);
      runs.push({ reply, logged: lines.slice(start) });
    }
    return runs;
  }

  it('logs a bad greeting version once', async () => {
    for (const { reply, logged } of await runBothWays([0x04, 0x01, 0x00])) {
      expect([...reply]).toEqual([]);
      expect(logged.map((line) => line.msg)).toEqual(['SOCKS client rejected']);
      expect(logged[0]!.reason).toBe('SOCKS version 4 is not 5');
      expect(logged[0]!.stage).toBe('greeting');
    }
  });

  it('logs a bad request version once', async () => {
    const request = ipv4Request(0x01, ports.closed);
    request[0] = 0x04;
    for (const { reply, logged } of await runBothWays([...GREETING, ...request])) {
      expect([...reply]).toEqual([0x05, 0x00]);
      expect(logged.map((line) => line.msg)).toEqual(['SOCKS client rejected']);
      expect(logged[0]!.reason).toBe('SOCKS version 4 is not 5');
      expect(logged[0]!.stage).toBe('request');
    }
  });

  it('logs an unsupported command once', async () => {
    const bytes = [...GREETING, ...ipv4Request(0x07, ports.closed)];
    for (const { reply, logged } of await runBothWays(bytes)) {
      // Method reply, then REP 0x07 (command not supported) with a 0.0.0.0:0 address.
      expect([...reply]).toEqual([0x05, 0x00, 0x05, 0x07, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
      expect(logged.map((line) => line.msg)).toEqual(['SOCKS client rejected']);
      expect(logged[0]!.reason).toBe('command 7 is not supported, only CONNECT (1) is');
      expect(logged[0]!.stage).toBe('request');
    }
  });

  it('logs an unsupported address type once', async () => {
    const bytes = [...GREETING, 0x05, 0x01, 0x00, 0x08, 127, 0, 0, 3, 0, 80];
    for (const { reply, logged } of await runBothWays(bytes)) {
      // REP 0x08: address type not supported.
      expect([...reply]).toEqual([0x05, 0x00, 0x05, 0x08, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
      expect(logged.map((line) => line.msg)).toEqual(['SOCKS client rejected']);
      expect(logged[0]!.reason).toBe('address type 8 is not supported');
      expect(logged[0]!.stage).toBe('request');
    }
  });

  // The refusal and the failed connect come after an asynchronous check, so these clients keep
  // their side open until the reply arrives.
  it('logs a refused destination once', async () => {
    const start = lines.length;
    const bytes = [...GREETING, ...domainRequest('bucket.s3.amazonaws.com', 443)];
    const reply = await exchange(ports.socks, Buffer.from(bytes), false);
    await sleep(50);
    // REP 0x02: connection not allowed by ruleset.
    expect([...reply]).toEqual([0x05, 0x00, 0x05, 0x02, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
    const logged = lines.slice(start);
    expect(logged.map((line) => line.msg)).toEqual(['connection refused']);
    expect(logged[0]!.rule).toBe('cloud-block');
    expect(logged[0]!.destination).toBe('bucket.s3.amazonaws.com');
    expect(logged[0]!.port).toBe(443);
  });

  it('logs an unreachable destination once', async () => {
    const start = lines.length;
    const bytes = [...GREETING, ...ipv4Request(0x01, ports.closed)];
    const reply = await exchange(ports.socks, Buffer.from(bytes), false);
    await sleep(50);
    // REP 0x05: connection refused by the destination host.
    expect([...reply]).toEqual([0x05, 0x00, 0x05, 0x05, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
    const logged = lines.slice(start);
    expect(logged.map((line) => line.msg)).toEqual(['tunnel upstream unreachable']);
    expect(logged[0]!.code).toBe('ECONNREFUSED');
  });

  it('closes a rejected client that sent early data', async () => {
    // An optimistic client sends its first tunnel bytes right after the request, while the
    // gateway still resolves the name. They wait unread in the paused socket, and the socket
    // must still close after the failure reply once the client closes its side.
    const request = [...GREETING, ...domainRequest('files.example.org', ports.closed)];
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const socket = connect({ host: '127.0.0.1', port: ports.socks }, () => {
        socket.write(Buffer.from(request));
        setTimeout(() => socket.write('early tunnel data'), LOOKUP_MS / 4);
      });
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('end', () => socket.end());
      socket.on('error', reject);
      socket.on('close', () => resolve(Buffer.concat(chunks)));
    });
    // REP 0x05: connection refused by the destination host.
    expect([...reply]).toEqual([0x05, 0x00, 0x05, 0x05, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
    await sleep(100);
    expect(await openConnections()).toBe(0);
  });

  it('closes every rejected connection', async () => {
    await sleep(100);
    expect(await openConnections()).toBe(0);
  });

  it('logs a client that leaves mid-request', async () => {
    const start = lines.length;
    const partial = ipv4Request(0x01, ports.closed).slice(0, 6);
    const reply = await exchange(ports.socks, Buffer.from([...GREETING, ...partial]));
    await sleep(50);
    expect([...reply]).toEqual([0x05, 0x00]);
    const logged = lines.slice(start);
    expect(logged.map((line) => line.msg)).toEqual(['SOCKS client rejected']);
    expect(logged[0]!.reason).toBe('client closed during the request stage');
    expect(logged[0]!.stage).toBe('request');
  });
});
