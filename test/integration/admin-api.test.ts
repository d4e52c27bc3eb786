// The admin API of a real `tollgate run` process, queried with curl. The gateway runs from
// dist/ (built by `npm test`) with an HTTP proxy and the admin API on 127.0.0.1; the upload
// target listens on 127.0.0.2, which is outside the protected network 127.0.0.1/32. Nothing
// binds or connects to an address outside 127.0.0.0/8: the non-loopback admin address is only
// checked by `tollgate config check` and rejected by `tollgate run` before anything binds.

import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, isListening, waitForPort } from './support/ports.js';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '..', '..');
const cliPath = join(repo, 'dist', 'cli', 'main.js');
const TOKEN = 'integration-admin-token-4c2d8e0a7b';
const ENV_TOKEN = 'environment-admin-token-7e1f0b3c9d';
const POLICY = `version: 1
name: admin-integration
rules:
  - { id: upload-alert, name: More than 100 kB per remote, kind: egress-threshold, action: alert,
      threshold: 100000, per: remote, window: hour }
`;
const UPLOAD_BYTES = 300_000;

interface CurlReply {
  status: number;
  body: string;
}

/** Runs curl and returns the HTTP status (from --write-out) and the response body. */
async function curl(args: string[]): Promise<CurlReply> {
  const { stdout } = await run('curl', [
    '-sS',
    '--max-time',
    '20',
    '--write-out',
    '\n%{http_code}',
    ...args,
  ]);
  const cut = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) };
}

interface Gateway {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

function startCli(configPath: string, env: NodeJS.ProcessEnv): Gateway {
  const child = spawn(process.execPath, [cliPath, 'run', '--config', configPath], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  return { child, stderr: () => stderr, exited };
}

async function stopCli(gateway: Gateway | undefined): Promise<void> {
  if (gateway === undefined || gateway.child.exitCode !== null) return;
  gateway.child.kill('SIGTERM');
  await gateway.exited;
}

/** Returns the value of one series (name and labels) in Prometheus text, or undefined. */
function sample(metrics: string, series: string): number | undefined {
  const line = metrics.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Builds the gateway's environment: this one without TOLLGATE_ADMIN_TOKEN, plus `extra`. */
function gatewayEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const { TOLLGATE_ADMIN_TOKEN: _ignored, ...rest } = process.env;
  return { ...rest, ...extra };
}

describe('admin API of tollgate run', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-admin-it-'));
  const ports = { proxy: 0, admin: 0, target: 0 };
  let target: HttpServer;
  let receivedBytes = 0;
  let gateway: Gateway;
  const auth = ['-H', `Authorization: Bearer ${TOKEN}`];
  const adminUrl = (path: string) => `http://127.0.0.1:${ports.admin}${path}`;

  beforeAll(async () => {
    ports.proxy = await freePort();
    ports.admin = await freePort();
    ports.target = await freePort('127.0.0.2');

    target = createHttpServer((req, res) => {
      req.on('data', (chunk: Buffer) => {
        receivedBytes += chunk.length;
      });
      req.on('end', () => res.end('stored\n'));
    });
    await new Promise<void>((done) => target.listen(ports.target, '127.0.0.2', done));

    writeFileSync(join(dir, 'policy.yaml'), POLICY);
    writeFileSync(join(dir, 'admin.token'), `${TOKEN}\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'upload.bin'), Buffer.alloc(UPLOAD_BYTES, 0x61));
    writeFileSync(join(dir, 'big-body.bin'), Buffer.alloc(5000, 0x62));
    writeFileSync(
      join(dir, 'gw.yaml'),
      `version: 1
policy: policy.yaml
protected_networks: [127.0.0.1/32]
source_networks: [127.0.0.1/32]
events: events.jsonl
listeners:
  - { name: web, type: http-proxy, listen: "127.0.0.1:${ports.proxy}" }
admin:
  listen: "127.0.0.1:${ports.admin}"
  token_file: admin.token
limits: { drain_timeout: 2s }
`,
    );
    gateway = startCli(join(dir, 'gw.yaml'), gatewayEnv());
    await waitForPort('127.0.0.1', ports.admin, 150);
  });

  afterAll(async () => {
    await stopCli(gateway);
    await new Promise((done) => target?.close(done));
  });

  it('serves /health with the bound listeners', async () => {
    const reply = await curl([...auth, adminUrl('/health')]);
    expect(reply.status).toBe(200);
    const body = JSON.parse(reply.body);
    expect(body.status).toBe('ok');
    expect(body.listeners).toEqual([
      { name: 'web', type: 'http-proxy', host: '127.0.0.1', port: ports.proxy },
    ]);
  });

  it.each([
    ['no token', []],
    ['a wrong token', ['-H', 'Authorization: Bearer integration-admin-token-4c2d8e0a7c']],
    ['the token with Basic', ['-u', `admin:${TOKEN}`]],
  ])('rejects %s with 401', async (_name, args) => {
    for (const path of ['/health', '/metrics', '/meters', '/nope']) {
      const reply = await curl([...args, adminUrl(path)]);
      expect(reply.status).toBe(401);
      expect(reply.body).toBe('');
    }
    const reload = await curl([...args, '-X', 'POST', adminUrl('/reload')]);
    expect(reload.status).toBe(401);
  });

  it('answers 404 and 405 with a valid token', async () => {
    expect((await curl([...auth, adminUrl('/nope')])).status).toBe(404);
    expect((await curl([...auth, '-X', 'POST', adminUrl('/health')])).status).toBe(405);
    expect((await curl([...auth, adminUrl('/reload')])).status).toBe(405);
  });

  it('moves the metrics and meters after an upload through the proxy', async () => {
    const before = (await curl([...auth, adminUrl('/metrics')])).body;
    expect(sample(before, 'tollgate_egress_bytes_total')).toBe(0);
    const acceptedBefore = sample(before, 'tollgate_connections_accepted_total') ?? -1;

    const upload = await curl([
      '-x',
      `http://127.0.0.1:${ports.proxy}`,
      '--data-binary',
      `@${join(dir, 'upload.bin')}`,
      `http://127.0.0.2:${ports.target}/upload`,
    ]);
    expect(upload.status).toBe(200);
    expect(receivedBytes).toBe(UPLOAD_BYTES);

    let after = '';
    for (let attempt = 0; attempt < 50; attempt++) {
      after = (await curl([...auth, adminUrl('/metrics')])).body;
      if ((sample(after, 'tollgate_events_total{action="network-flow"}') ?? 0) >= 1) break;
      await sleep(100);
    }
    expect(sample(after, 'tollgate_egress_bytes_total')).toBeGreaterThanOrEqual(UPLOAD_BYTES);
    expect(sample(after, 'tollgate_connections_accepted_total')).toBe(acceptedBefore + 1);
    expect(sample(after, 'tollgate_alerts_total{rule="upload-alert"}')).toBe(1);
    expect(sample(after, 'tollgate_events_total{action="network-flow"}')).toBe(1);
    expect(sample(after, 'tollgate_flows_open')).toBe(0);

    const meters = await curl([...auth, adminUrl('/meters?per=remote&top=20')]);
    expect(meters.status).toBe(200);
    const body = JSON.parse(meters.body);
    expect(body.total).toBe(1);
    expect(body.entries[0].key).toBe('127.0.0.2');
    expect(body.entries[0].rolling.bytes).toBeGreaterThanOrEqual(UPLOAD_BYTES);
    expect(body.entries[0].hour.bytes).toBeGreaterThanOrEqual(UPLOAD_BYTES);

    const invalid = await curl([...auth, adminUrl('/meters?per=host')]);
    expect(invalid.status).toBe(400);
  });

  it('reloads the policy and reports validation errors', async () => {
    const good = await curl([...auth, '-X', 'POST', adminUrl('/reload')]);
    expect(good.status).toBe(200);
    expect(JSON.parse(good.body)).toMatchObject({ status: 'reloaded', rules: 1 });

    writeFileSync(join(dir, 'policy.yaml'), `${POLICY}  - { id: broken, kind: nonsense }\n`);
    const bad = await curl([...auth, '-X', 'POST', adminUrl('/reload')]);
    expect(bad.status).toBe(422);
    const errors: string[] = JSON.parse(bad.body).errors;
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]).toMatch(/policy\.yaml:6:\d+ rules\[1\]/);

    writeFileSync(join(dir, 'policy.yaml'), POLICY);
    expect((await curl([...auth, '-X', 'POST', adminUrl('/reload')])).status).toBe(200);
  });

  it('rejects a request body over 4 KiB with 413', async () => {
    const reply = await curl([
      ...auth,
      '--data-binary',
      `@${join(dir, 'big-body.bin')}`,
      adminUrl('/reload'),
    ]);
    expect(reply.status).toBe(413);
  });

  it('never writes the token to the log', async () => {
    await sleep(100);
    const log = gateway.stderr();
    expect(log).toContain('admin API listening');
    expect(log).toContain('admin API request without a valid token rejected');
    expect(log).not.toContain(TOKEN);
  });
});

describe('admin API configuration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-admin-config-'));
  const children: Gateway[] = [];

  afterAll(async () => {
    for (const child of children) await stopCli(child);
  });

  const writeConfig = (name: string, proxyPort: number, admin: string) => {
    writeFileSync(
      join(dir, name),
      `version: 1
protected_networks: [127.0.0.1/32]
events: events.jsonl
listeners:
  - { name: web, type: http-proxy, listen: "127.0.0.1:${proxyPort}" }
${admin}
`,
    );
    return join(dir, name);
  };

  it('config check rejects a non-loopback admin address', async () => {
    const path = writeConfig('open.yaml', await freePort(), 'admin:\n  listen: 0.0.0.0:9180');
    const check = spawnSync(process.execPath, [cliPath, 'config', 'check', path], {
      encoding: 'utf8',
    });
    expect(check.status).toBe(1);
    expect(check.stderr).toContain(
      `${path}:7:11 admin.listen: admin address "0.0.0.0" is not a loopback address`,
    );
    expect(check.stderr).toContain('admin.allow_non_loopback: true');
  });

  it('run exits with status 2 before binding a non-loopback admin address', async () => {
    const proxyPort = await freePort();
    const path = writeConfig('open-run.yaml', proxyPort, 'admin:\n  listen: "[::]:9180"');
    const result = spawnSync(process.execPath, [cliPath, 'run', '--config', path], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('admin.listen: admin address "::" is not a loopback address');
    expect(await isListening('127.0.0.1', proxyPort)).toBe(false);
  });

  it('config check accepts a non-loopback address with allow_non_loopback', async () => {
    const path = writeConfig(
      'allowed.yaml',
      await freePort(),
      'admin:\n  listen: 192.0.2.10:9180\n  allow_non_loopback: true',
    );
    const check = spawnSync(process.execPath, [cliPath, 'config', 'check', path], {
      encoding: 'utf8',
    });
    expect(check.stderr).toBe('');
    expect(check.status).toBe(0);
  });

  it('runs without the admin API when no token is set', async () => {
    const proxyPort = await freePort();
    const adminPort = await freePort();
    const path = writeConfig(
      'no-token.yaml',
      proxyPort,
      `admin: { listen: "127.0.0.1:${adminPort}" }`,
    );
    const gateway = startCli(path, gatewayEnv());
    children.push(gateway);
    await waitForPort('127.0.0.1', proxyPort, 150);
    await sleep(200);
    expect(await isListening('127.0.0.1', adminPort)).toBe(false);
    const lines = gateway
      .stderr()
      .split('\n')
      .filter((line) => line.includes('admin API not started'));
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!).msg).toBe(
      'admin API not started: no token: set admin.token_file or TOLLGATE_ADMIN_TOKEN',
    );
  });

  it('takes the token from TOLLGATE_ADMIN_TOKEN', async () => {
    const proxyPort = await freePort();
    const adminPort = await freePort();
    const path = writeConfig(
      'env-token.yaml',
      proxyPort,
      `admin: { listen: "127.0.0.1:${adminPort}" }`,
    );
    const gateway = startCli(path, gatewayEnv({ TOLLGATE_ADMIN_TOKEN: ENV_TOKEN }));
    children.push(gateway);
    await waitForPort('127.0.0.1', adminPort, 150);
    const url = `http://127.0.0.1:${adminPort}/health`;
    expect((await curl(['-H', `Authorization: Bearer ${ENV_TOKEN}`, url])).status).toBe(200);
    expect((await curl(['-H', `Authorization: Bearer ${TOKEN}`, url])).status).toBe(401);
    expect(gateway.stderr()).not.toContain(ENV_TOKEN);
  });
});
