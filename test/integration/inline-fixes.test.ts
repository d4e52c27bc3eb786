// The HTTP proxy and SOCKS5 listener with real clients, for the cases a first trial of
// `tollgate run` got wrong: upstream responses that arrive before the upload is read, a block
// threshold that already fired, password files, and a config that meters nothing. Targets
// listen on 127.0.0.2 and 127.0.0.3 (python3 -m http.server, Node servers); clients come from
// 127.0.0.1, the only protected address.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningGateway, startGateway } from '../../src/cli/run.js';
import { DEFAULT_CONFIG_TEXT } from '../../src/config/default.js';
import { loadConfigText } from '../../src/config/load.js';
import { EXPECT_CONTINUE_TIMEOUT_MS } from '../../src/proxy/http-proxy.js';
import { type CurlResult, curl as runCurl } from './support/curl.js';
import { readEvents } from './support/events.js';
import { freePort, waitForPort } from './support/ports.js';
import { killGroup } from './support/processes.js';

const UPLOAD_BYTES = 2 * 1024 * 1024;
const NOT_METERED = 'no source network overlaps the protected networks';
const THRESHOLD = 1_000_000;

/** curl with room for the 2 MiB downloads of these tests. */
const curl = (args: string[]): Promise<CurlResult> =>
  runCurl(args, { maxBuffer: 16 * 1024 * 1024 });

function listen(server: Server | HttpServer, host: string, port: number): Promise<void> {
  return new Promise((resolve) => server.listen(port, host, resolve));
}

/** Creates a pino logger that appends each line, parsed, to `lines`. */
function capturingLog() {
  const lines: Array<Record<string, any>> = [];
  const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { log, lines };
}

describe('HTTP proxy with early upstream responses', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-fixes-'));
  const uploadPath = join(dir, 'upload.bin');
  const eventsPath = join(dir, 'events.jsonl');
  const { log, lines } = capturingLog();
  const children: ChildProcess[] = [];
  const servers: Array<Server | HttpServer> = [];
  const ports = { proxy: 0, python: 0, early: 0, reset: 0, sink: 0, http10: 0 };
  let sinkReceivedBytes = 0;
  let http10ReceivedBytes = 0;
  let gateway: RunningGateway;

  const viaProxy = (args: string[]) =>
    curl(['-x', `http://127.0.0.1:${ports.proxy}`, '-w', '%{http_code}', ...args]);
  const events = () => readEvents(eventsPath);

  beforeAll(async () => {
    writeFileSync(uploadPath, Buffer.alloc(UPLOAD_BYTES, 0x61));
    ports.proxy = await freePort('127.0.0.1');
    ports.python = await freePort('127.0.0.2');
    ports.early = await freePort('127.0.0.3');
    ports.reset = await freePort('127.0.0.3');
    ports.sink = await freePort('127.0.0.2');
    ports.http10 = await freePort('127.0.0.3');

    // python3 -m http.server responds 501 to PUT without reading the body, then closes.
    const python = spawn(
      '/usr/bin/python3',
      ['-m', 'http.server', '--bind', '127.0.0.2', '--directory', dir, String(ports.python)],
      { detached: true, stdio: 'ignore' },
    );
    children.push(python);

    // A Node target that rejects uploads unread: 413 on /too-large, 403 elsewhere. With a
    // 'checkContinue' listener it never sends the 100 (Continue) either.
    const early = createHttpServer();
    const reject = (req: { url?: string }, res: import('node:http').ServerResponse) => {
      const tooLarge = req.url === '/too-large';
      res.writeHead(tooLarge ? 413 : 403, { 'content-type': 'text/plain', connection: 'close' });
      res.end(tooLarge ? 'upload too large\n' : 'uploads forbidden\n');
    };
    early.on('request', reject);
    early.on('checkContinue', reject);
    await listen(early, '127.0.0.3', ports.early);
    servers.push(early);

    // A target that reads the request head and resets the connection without a response.
    const reset = createServer((socket) => {
      socket.once('data', () => socket.resetAndDestroy());
      socket.on('error', () => {});
    });
    await listen(reset, '127.0.0.3', ports.reset);
    servers.push(reset);

    // A target that reads and counts every upload.
    const sink = createHttpServer((req, res) => {
      req.on('data', (chunk: Buffer) => {
        sinkReceivedBytes += chunk.length;
      });
      req.on('end', () => res.end('stored\n'));
    });
    await listen(sink, '127.0.0.2', ports.sink);
    servers.push(sink);

    // An HTTP/1.0 target: it ignores Expect, sends no 100 and waits for the whole body.
    const http10 = createServer((socket) => {
      let head = '';
      let bodyLeft = -1;
      socket.on('data', (chunk: Buffer) => {
        let body = chunk;
        if (bodyLeft < 0) {
          head += chunk.toString('latin1');
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return;
          bodyLeft = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
          body = Buffer.from(head.slice(end + 4), 'latin1');
        }
        http10ReceivedBytes += body.length;
        bodyLeft -= body.length;
        if (bodyLeft <= 0) socket.end('HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\nstored\n');
      });
      socket.on('error', () => {});
    });
    await listen(http10, '127.0.0.3', ports.http10);
    servers.push(http10);

    writeFileSync(
      join(dir, 'policy.yaml'),
      `version: 1
rules:
  - { id: upload-limit, name: More than 1 MB per remote, kind: egress-threshold, action: block,
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
    await waitForPort('127.0.0.2', ports.python);
  }, 30_000);

  afterAll(async () => {
    await gateway?.stop();
    for (const child of children) killGroup(child);
    for (const server of servers) server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('passes python http.server 501 through', async () => {
    const url = `http://127.0.0.2:${ports.python}/up`;
    const direct = await curl(['-w', '%{http_code}', '-o', '/dev/null', '-T', uploadPath, url]);
    expect(direct.stdout).toBe('501');

    const failuresBefore = gateway.gateway.stats.upstreamFailures;
    const proxied = await viaProxy(['-o', '/dev/null', '-T', uploadPath, url]);
    expect(proxied.stderr).toBe('');
    expect(proxied.code).toBe(0);
    expect(proxied.stdout).toBe('501');
    expect(gateway.gateway.stats.upstreamFailures).toBe(failuresBefore);
  });

  it('passes 413 and 403 before the 100 through', async () => {
    const tooLarge = await viaProxy([
      '-T',
      uploadPath,
      `http://127.0.0.3:${ports.early}/too-large`,
    ]);
    expect(tooLarge.code).toBe(0);
    expect(tooLarge.stdout).toBe('upload too large\n413');

    const forbidden = await viaProxy(['-T', uploadPath, `http://127.0.0.3:${ports.early}/other`]);
    expect(forbidden.code).toBe(0);
    expect(forbidden.stdout).toBe('uploads forbidden\n403');
  });

  it('passes 403 to an upload without Expect through', async () => {
    const forbidden = await viaProxy([
      '-H',
      'Expect:',
      '--data-binary',
      'x'.repeat(64 * 1024),
      `http://127.0.0.3:${ports.early}/other`,
    ]);
    expect(forbidden.stdout).toBe('uploads forbidden\n403');
  });

  it('still uploads through an accepted 100', async () => {
    const before = sinkReceivedBytes;
    const small = 100_000;
    writeFileSync(join(dir, 'small.bin'), Buffer.alloc(small, 0x62));
    const stored = await viaProxy([
      '-T',
      join(dir, 'small.bin'),
      `http://127.0.0.2:${ports.sink}/small`,
    ]);
    expect(stored.stdout).toBe('stored\n200');
    expect(sinkReceivedBytes - before).toBe(small);
  });

  it('sends the 100 itself for an HTTP/1.0 upstream', async () => {
    const small = 100_000;
    writeFileSync(join(dir, 'small10.bin'), Buffer.alloc(small, 0x63));
    const started = performance.now();
    // curl would wait 10 s for a 100 (Continue); the proxy sends one after 1 s.
    const stored = await viaProxy([
      '--expect100-timeout',
      '10',
      '-T',
      join(dir, 'small10.bin'),
      `http://127.0.0.3:${ports.http10}/up`,
    ]);
    const elapsedMs = performance.now() - started;
    expect(stored.stdout).toBe('stored\n200');
    expect(http10ReceivedBytes).toBe(small);
    expect(elapsedMs).toBeGreaterThanOrEqual(EXPECT_CONTINUE_TIMEOUT_MS - 50);
    expect(elapsedMs).toBeLessThan(5000);
  });

  it('logs and counts a reset upstream as 502', async () => {
    const failuresBefore = gateway.gateway.stats.upstreamFailures;
    const linesBefore = lines.length;
    const failed = await viaProxy([`http://127.0.0.3:${ports.reset}/`]);
    expect(failed.stdout).toBe(
      `tollgate: upstream 127.0.0.3:${ports.reset} failed: ECONNRESET\n502`,
    );
    expect(gateway.gateway.stats.upstreamFailures).toBe(failuresBefore + 1);

    const logged = lines.slice(linesBefore).find((line) => line.msg === 'upstream request failed');
    expect(logged?.code).toBe('ECONNRESET');
    expect(logged?.upstream).toBe(`127.0.0.3:${ports.reset}`);
  });

  it('logs an unreachable upstream as 502', async () => {
    const closedPort = await freePort('127.0.0.3');
    const failuresBefore = gateway.gateway.stats.upstreamFailures;
    const linesBefore = lines.length;
    const failed = await viaProxy([`http://127.0.0.3:${closedPort}/`]);
    expect(failed.stdout).toBe(
      `tollgate: cannot connect to 127.0.0.3:${closedPort}: ECONNREFUSED\n502`,
    );
    expect(gateway.gateway.stats.upstreamFailures).toBe(failuresBefore + 1);
    const logged = lines.slice(linesBefore).find((line) => line.msg === 'upstream unreachable');
    expect(logged?.code).toBe('ECONNREFUSED');
    await sleep(100);
    const attempt = events().find(
      (event) => event.event?.action === 'network-flow' && event.destination?.port === closedPort,
    );
    expect(attempt?.tollgate.flow.end_reason).toBe('unreachable');
  });

  it('refuses a remote over its threshold with 403', async () => {
    // The first upload crosses the 1 MB threshold and is cut.
    const first = await viaProxy(['-T', uploadPath, `http://127.0.0.2:${ports.sink}/first`]);
    expect(first.code).not.toBe(0);
    await sleep(100);
    expect(events().some((event) => event.event?.action === 'transfer-cut')).toBe(true);

    // The next upload is refused at connect: a 403 and no 100 (Continue) before it.
    const receivedBefore = sinkReceivedBytes;
    const second = await viaProxy([
      '-v',
      '-T',
      uploadPath,
      `http://127.0.0.2:${ports.sink}/second`,
    ]);
    expect(second.code).toBe(0);
    expect(second.stdout).toBe(
      'tollgate: destination refused by rule upload-limit (More than 1 MB per remote)\n403',
    );
    expect(second.stderr).not.toContain('HTTP/1.1 100');
    expect(second.stderr).toContain('< HTTP/1.1 403');
    expect(sinkReceivedBytes).toBe(receivedBefore);
    await sleep(100);
    const blocked = events().filter((event) => event.event?.action === 'connection-blocked');
    expect(blocked.at(-1)?.rule?.id).toBe('upload-limit');
  });
});

describe('SOCKS5 user with a password file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-socks-file-'));
  const password = 'file-only-pass-7Q';
  const { log, lines } = capturingLog();
  const ports = { socks: 0, target: 0 };
  let target: HttpServer;
  let gateway: RunningGateway;

  const viaSocks = (credentials: string) =>
    curl([
      '--socks5',
      `127.0.0.1:${ports.socks}`,
      '--proxy-user',
      credentials,
      '-w',
      '%{http_code}',
      `http://127.0.0.2:${ports.target}/`,
    ]);

  beforeAll(async () => {
    ports.socks = await freePort('127.0.0.1');
    ports.target = await freePort('127.0.0.2');
    target = createHttpServer((_req, res) => res.end('hello through socks\n'));
    await listen(target, '127.0.0.2', ports.target);

    writeFileSync(join(dir, 'vendor.password'), `${password}\n`);
    const config = loadConfigText(
      `version: 1
protected_networks: [127.0.0.1/32]
events: events.jsonl
listeners:
  - name: socks
    type: socks5
    listen: "127.0.0.1:${ports.socks}"
    users:
      - { username: vendor, password_file: vendor.password }
`,
      join(dir, 'gw.yaml'),
      dir,
    );
    gateway = await startGateway({ config, log });
  });

  afterAll(async () => {
    await gateway?.stop();
    target?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('accepts the password from the file', async () => {
    const served = await viaSocks(`vendor:${password}`);
    expect(served.code).toBe(0);
    expect(served.stdout).toBe('hello through socks\n200');
  });

  it('rejects a wrong or padded password', async () => {
    for (const wrong of ['wrong-pass', `${password}\n`, `${password} `, password.slice(0, -1)]) {
      const rejected = await viaSocks(`vendor:${wrong}`);
      expect(rejected.code).not.toBe(0);
      expect(rejected.stdout).toBe('000');
    }
    const wrongUser = await viaSocks(`other:${password}`);
    expect(wrongUser.stdout).toBe('000');
  });

  it('never logs the password', async () => {
    await viaSocks(`vendor:${password}`);
    await viaSocks(`vendor:${password}x`);
    await gateway.stop();
    const text = lines.map((line) => JSON.stringify(line)).join('\n');
    expect(lines.some((line) => line.reason === 'authentication failed')).toBe(true);
    expect(text).not.toContain(password);
    expect(readFileSync(join(dir, 'events.jsonl'), 'utf8')).not.toContain(password);
  });
});

describe('local trial of the default policy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-trial-'));
  const eventsPath = join(dir, 'events.jsonl');
  const children: ChildProcess[] = [];
  let pythonPort = 0;

  /** Starts a gateway from `configText`, runs a GET and a PUT through it, and stops it. */
  async function tryConfig(configText: string) {
    const { log, lines } = capturingLog();
    rmSync(eventsPath, { force: true });
    const config = loadConfigText(configText, join(dir, 'trial.yaml'), dir);
    const gateway = await startGateway({ config, log });
    const proxy = gateway.gateway.servers[0]!.address;
    const url = `http://127.0.0.2:${pythonPort}`;
    const get = await curl([
      '-x',
      `http://127.0.0.1:${proxy.port}`,
      '-w',
      '%{http_code}',
      '-o',
      '/dev/null',
      `${url}/`,
    ]);
    const put = await curl([
      '-x',
      `http://127.0.0.1:${proxy.port}`,
      '-w',
      '%{http_code}',
      '-o',
      '/dev/null',
      '-T',
      join(dir, 'upload.bin'),
      `${url}/up`,
    ]);
    await gateway.stop();
    const events = readFileSync(eventsPath, 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, any>);
    return { lines, events, get: get.stdout, put: put.stdout };
  }

  beforeAll(async () => {
    writeFileSync(join(dir, 'upload.bin'), Buffer.alloc(200_000, 0x61));
    pythonPort = await freePort('127.0.0.2');
    const python = spawn(
      '/usr/bin/python3',
      ['-m', 'http.server', '--bind', '127.0.0.2', '--directory', dir, String(pythonPort)],
      { detached: true, stdio: 'ignore' },
    );
    children.push(python);
    await waitForPort('127.0.0.2', pythonPort);
  });

  afterAll(() => {
    for (const child of children) killGroup(child);
    rmSync(dir, { recursive: true, force: true });
  });

  it('warns that the embedded config meters no uploads', async () => {
    const result = await tryConfig(
      DEFAULT_CONFIG_TEXT.replace('127.0.0.1:3128', `127.0.0.1:${await freePort('127.0.0.1')}`)
        .replace('127.0.0.1:1080', `127.0.0.1:${await freePort('127.0.0.1')}`)
        .concat('events: events.jsonl\n'),
    );
    expect(result.get).toBe('200');
    expect(result.put).toBe('501');
    const warnings = result.lines.filter((line) => line.msg?.startsWith(NOT_METERED));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.level).toBe(40);
    expect(warnings[0]?.sourceNetworks).toEqual(['127.0.0.0/8', '::1/128']);
    expect(warnings[0]?.protectedNetworks).toContain('10.0.0.0/8');
    expect(result.events).toEqual([]);
  });

  it('meters the documented trial config', async () => {
    // The configuration docs/configuration.md gives for a local trial, with a free port.
    const result = await tryConfig(`version: 1
protected_networks: [127.0.0.1/32]
source_networks: [127.0.0.0/8, "::1/128"]
events: events.jsonl
listeners:
  - { name: http, type: http-proxy, listen: "127.0.0.1:${await freePort('127.0.0.1')}" }
`);
    expect(result.get).toBe('200');
    expect(result.put).toBe('501');
    expect(result.lines.some((line) => line.msg?.startsWith(NOT_METERED))).toBe(false);
    const requests = result.events.filter((event) => event.event?.action === 'http-request');
    expect(requests.map((event) => event.http?.request?.method).sort()).toEqual(['GET', 'PUT']);
    const meters = result.events.filter((event) => event.event?.action === 'egress-meter');
    expect(meters.length).toBeGreaterThan(0);
    expect(meters[0]?.destination?.ip).toBe('127.0.0.2');
    expect(meters[0]?.tollgate?.egress?.bytes).toBeGreaterThan(0);
  });
});
