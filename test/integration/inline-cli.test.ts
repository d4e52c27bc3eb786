// `tollgate run` as users start it: the built CLI as a child process, with signals. SIGHUP
// reloads the policy (an invalid one keeps the running policy), SIGTERM stops accepting, lets
// an in-flight transfer finish within drain_timeout and flushes the events to the file. The
// pseudonym key comes from --pseudonym-key-file or pseudonym_key_file, and start-up problems
// stop the gateway with exit status 2.
// Targets listen on 127.0.0.2 and 127.0.0.3; the gateway's clients come from 127.0.0.1.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curl } from './support/curl.js';
import { freePort, isListening } from './support/ports.js';
import { killGroup, runTool } from './support/processes.js';

const run = promisify(execFile);
const SLOW_CHUNKS = 10;
const SLOW_CHUNK_BYTES = 10_000;
const SLOW_CHUNK_INTERVAL_MS = 150;

const ALLOW_ALL = 'version: 1\nrules: []\n';
const ONLY_127_0_0_2 = `version: 1
rules:
  - { id: only-two, name: Only 127.0.0.2, kind: destination-not-allowed, action: block,
      allowed: { cidrs: [127.0.0.2/32] } }
`;

beforeAll(async () => {
  if (process.env.TOLLGATE_SKIP_BUILD === undefined) {
    // Type errors elsewhere in the tree still emit JavaScript, so the exit code is ignored.
    await run('npx', ['tsc', '-p', 'tsconfig.build.json']).catch(() => {});
  }
  expect(existsSync('dist/cli/main.js')).toBe(true);
}, 60_000);

describe('tollgate run as a process', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-cli-'));
  const policyPath = join(dir, 'policy.yaml');
  const eventsPath = join(dir, 'events.jsonl');
  const targets: HttpServer[] = [];
  const ports = { proxy: 0, two: 0, three: 0 };
  let child: ChildProcess;
  let logText = '';
  let exit: Promise<number | null>;

  const logLines = () =>
    logText
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, any>);
  async function waitForLog(message: string, after = 0): Promise<Record<string, any>> {
    for (let attempt = 0; attempt < 100; attempt++) {
      const found = logLines()
        .slice(after)
        .find((line) => line.msg === message);
      if (found !== undefined) return found;
      await sleep(50);
    }
    throw new Error(`no log line "${message}" in:\n${logText}`);
  }
  const target = (host: string, port: number, path = '/') =>
    curl([
      '-x',
      `http://127.0.0.1:${ports.proxy}`,
      '-w',
      '%{http_code}',
      `http://${host}:${port}${path}`,
    ]);

  beforeAll(async () => {
    for (const [name, host] of [
      ['two', '127.0.0.2'],
      ['three', '127.0.0.3'],
    ] as const) {
      const port = await freePort(host);
      ports[name] = port;
      const server = createHttpServer(async (req, res) => {
        if (req.url !== '/slow') {
          res.end(`hello from ${host}\n`);
          return;
        }
        // A download that takes SLOW_CHUNKS * SLOW_CHUNK_INTERVAL_MS, for the drain test.
        res.writeHead(200, { 'content-length': SLOW_CHUNKS * SLOW_CHUNK_BYTES });
        for (let i = 0; i < SLOW_CHUNKS; i++) {
          res.write(Buffer.alloc(SLOW_CHUNK_BYTES, 0x61));
          await sleep(SLOW_CHUNK_INTERVAL_MS);
        }
        res.end();
      });
      await new Promise<void>((resolve) => server.listen(port, host, resolve));
      targets.push(server);
    }
    ports.proxy = await freePort('127.0.0.1');

    writeFileSync(policyPath, ALLOW_ALL);
    const configPath = join(dir, 'gw.yaml');
    writeFileSync(
      configPath,
      `version: 1
policy: policy.yaml
protected_networks: [127.0.0.1/32]
events: events.jsonl
# URL paths are pseudonymized by default; the test finds its requests by path.
include_phi: true
listeners:
  - { name: web, type: http-proxy, listen: "127.0.0.1:${ports.proxy}" }
limits: { drain_timeout: 5s }
`,
    );
    child = spawn(process.execPath, ['dist/cli/main.js', 'run', '--config', configPath], {
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, TOLLGATE_PSEUDONYM_KEY: 'a'.repeat(64) },
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (text: string) => {
      logText += text;
    });
    exit = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    await waitForLog('gateway started');
  }, 60_000);

  afterAll(() => {
    killGroup(child);
    for (const server of targets) server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('applies a valid policy on SIGHUP', async () => {
    expect((await target('127.0.0.3', ports.three)).stdout).toBe('hello from 127.0.0.3\n200');

    writeFileSync(policyPath, ONLY_127_0_0_2);
    const before = logLines().length;
    child.kill('SIGHUP');
    const reloaded = await waitForLog('policy reloaded', before);
    expect(reloaded.rules).toBe(1);

    const refused = await target('127.0.0.3', ports.three);
    expect(refused.stdout).toBe(
      'tollgate: destination refused by rule only-two (Only 127.0.0.2)\n403',
    );
    expect((await target('127.0.0.2', ports.two)).stdout).toBe('hello from 127.0.0.2\n200');
  });

  it('keeps the running policy when the reload is invalid', async () => {
    writeFileSync(policyPath, `${ONLY_127_0_0_2}  - { id: broken, kind: no-such-kind }\n`);
    const before = logLines().length;
    child.kill('SIGHUP');
    const failed = await waitForLog('policy reload failed; the running policy stays', before);
    expect(failed.level).toBe(50);
    expect(JSON.stringify(failed.err)).toContain('no-such-kind');

    const refused = await target('127.0.0.3', ports.three);
    expect(refused.stdout.endsWith('403')).toBe(true);
    expect((await target('127.0.0.2', ports.two)).stdout).toBe('hello from 127.0.0.2\n200');
  });

  it('drains an in-flight transfer on SIGTERM', async () => {
    const started = performance.now();
    const slow = curl([
      '-x',
      `http://127.0.0.1:${ports.proxy}`,
      '-o',
      join(dir, 'slow.bin'),
      `http://127.0.0.2:${ports.two}/slow`,
    ]);
    await sleep(300);
    child.kill('SIGTERM');
    await waitForLog('draining');
    await sleep(100);
    expect(await isListening('127.0.0.1', ports.proxy)).toBe(false);

    const result = await slow;
    expect(result.code).toBe(0);
    expect(readFileSync(join(dir, 'slow.bin')).length).toBe(SLOW_CHUNKS * SLOW_CHUNK_BYTES);
    expect(await exit).toBe(0);
    // The drain deadline is 5 s; the transfer needs about 1.5 s.
    expect(performance.now() - started).toBeLessThan(5000);

    const stopped = logLines().find((line) => line.msg === 'gateway stopped');
    expect(stopped).toBeDefined();
    const events = readFileSync(eventsPath, 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, any>);
    const slowRequest = events.find(
      (e) => e.event.action === 'http-request' && JSON.stringify(e).includes('/slow'),
    );
    expect(slowRequest).toBeDefined();
    expect(JSON.stringify(slowRequest)).toContain(String(SLOW_CHUNKS * SLOW_CHUNK_BYTES));
  }, 20_000);
});

/** A `tollgate run` child process and the text it writes to standard error. */
class GatewayProcess {
  readonly child: ChildProcess;
  readonly exit: Promise<number | null>;
  stderr = '';

  constructor(args: string[], env: NodeJS.ProcessEnv) {
    this.child = spawn(process.execPath, ['dist/cli/main.js', 'run', ...args], {
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
      env,
    });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (text: string) => {
      this.stderr += text;
    });
    this.exit = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  lines(): string[] {
    return this.stderr.split('\n').filter((line) => line !== '');
  }

  /** Resolves once the gateway logs that it started; throws when it exits first. */
  async started(): Promise<void> {
    let exited = false;
    void this.exit.then(() => {
      exited = true;
    });
    for (let attempt = 0; attempt < 200 && !exited; attempt++) {
      if (this.stderr.includes('"msg":"gateway started"')) return;
      await sleep(50);
    }
    throw new Error(`the gateway did not start:\n${this.stderr}`);
  }

  async stop(): Promise<number | null> {
    this.child.kill('SIGTERM');
    return this.exit;
  }
}

/** Returns this environment without TOLLGATE_PSEUDONYM_KEY, so only the key under test applies. */
function envWithoutKey(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.TOLLGATE_PSEUDONYM_KEY;
  return env;
}

function readEvents(path: string): Array<Record<string, any>> {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, any>);
}

describe('tollgate run pseudonym key', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-run-key-'));
  const KEY_TEXT = 'the pseudonym passphrase of this site';
  const PATIENT_PATH = '/exports/PATIENT-4711/report.pdf';
  let target: HttpServer;
  let targetPort = 0;
  const gateways: GatewayProcess[] = [];

  /** Writes a config whose HTTP proxy listens on a free port; returns its path and port. */
  async function writeConfig(name: string, extra: string): Promise<{ path: string; port: number }> {
    const port = await freePort('127.0.0.1');
    const path = join(dir, `${name}.yaml`);
    writeFileSync(
      path,
      `version: 1
protected_networks: [127.0.0.1/32]
events: ${name}.jsonl
${extra}listeners:
  - { name: web, type: http-proxy, listen: "127.0.0.1:${port}" }
`,
    );
    return { path, port };
  }

  function startGateway(args: string[]): GatewayProcess {
    const gateway = new GatewayProcess(args, envWithoutKey());
    gateways.push(gateway);
    return gateway;
  }

  /** Runs a gateway, sends one request for PATIENT_PATH through it, stops it; returns url.path. */
  async function pseudonymOfPath(name: string, extra: string, args: string[]): Promise<string> {
    const config = await writeConfig(name, extra);
    const gateway = startGateway(['--config', config.path, ...args]);
    await gateway.started();
    const result = await curl([
      '-x',
      `http://127.0.0.1:${config.port}`,
      `http://127.0.0.2:${targetPort}${PATIENT_PATH}`,
    ]);
    expect(result.stdout).toBe('report\n');
    expect(await gateway.stop()).toBe(0);
    expect(gateway.stderr).not.toContain(KEY_TEXT);
    const request = readEvents(join(dir, `${name}.jsonl`)).find(
      (event) => event.event.action === 'http-request',
    );
    expect(request).toBeDefined();
    return request!.url.path as string;
  }

  beforeAll(async () => {
    writeFileSync(join(dir, 'site.key'), `${KEY_TEXT}\n`);
    targetPort = await freePort('127.0.0.2');
    target = createHttpServer((_req, res) => res.end('report\n'));
    await new Promise<void>((resolve) => target.listen(targetPort, '127.0.0.2', resolve));
  });

  afterAll(() => {
    for (const gateway of gateways) killGroup(gateway.child);
    target.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keys pseudonyms from the key file', async () => {
    // The documented pseudonym: HMAC-SHA256(key, kind NUL value), first 32 hex digits.
    const mac = createHmac('sha256', Buffer.from(KEY_TEXT, 'utf8'))
      .update(`url-path\0${PATIENT_PATH}`)
      .digest('hex');
    const expected = `hmac-sha256:${mac.slice(0, 32)}`;

    const fromOption = await pseudonymOfPath('option', '', [
      '--pseudonym-key-file',
      join(dir, 'site.key'),
    ]);
    expect(fromOption).toBe(expected);
    const fromConfig = await pseudonymOfPath('config', 'pseudonym_key_file: site.key\n', []);
    expect(fromConfig).toBe(expected);
  }, 30_000);

  it('logs the missing key as a JSON warn line', async () => {
    const config = await writeConfig('no-key', '');
    const gateway = startGateway(['--config', config.path]);
    await gateway.started();
    expect(await gateway.stop()).toBe(0);

    const lines = gateway.lines();
    expect(lines.filter((line) => !line.startsWith('{'))).toEqual([]);
    const warning = lines
      .map((line) => JSON.parse(line) as Record<string, any>)
      .find((line) => String(line.msg).startsWith('no pseudonym key configured'));
    expect(warning).toBeDefined();
    expect(warning!.level).toBe(40);
    expect(warning!.msg).toContain('pseudonym_key_file');
  }, 20_000);

  it('rejects a short key file at start', async () => {
    writeFileSync(join(dir, 'short.key'), 'SECRETKEY\n');
    const config = await writeConfig('short', 'pseudonym_key_file: short.key\n');
    const gateway = startGateway(['--config', config.path]);
    expect(await gateway.exit).toBe(2);
    expect(gateway.stderr).toBe(
      `tollgate run: ${config.path}:4:21 pseudonym_key_file: invalid key in pseudonym key file ${join(dir, 'short.key')}: pseudonym key length 9 bytes is below the minimum 16\n`,
    );
  });

  it('rejects a missing key file option at start', async () => {
    const config = await writeConfig('absent', '');
    const keyFile = join(dir, 'absent.key');
    const gateway = startGateway(['--config', config.path, '--pseudonym-key-file', keyFile]);
    expect(await gateway.exit).toBe(2);
    expect(gateway.stderr).toBe(
      `tollgate run: cannot read the pseudonym key file ${keyFile}: ENOENT\n`,
    );
  });
});

describe('tollgate config check of a relay upstream', () => {
  it('rejects the cloud metadata address', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-relay-'));
    const path = join(dir, 'gw.yaml');
    writeFileSync(
      path,
      `version: 1
listeners:
  - { name: metadata, type: relay, listen: "127.0.0.1:8080", upstream: "169.254.169.254:80" }
`,
    );
    const check = await runTool(process.execPath, ['dist/cli/main.js', 'config', 'check', path]);
    expect(check.code).toBe(1);
    expect(check.stderr).toContain(
      `${path}:3:72 listeners[0].upstream: relay "metadata" upstream 169.254.169.254:80 is in the denied range 169.254.0.0/16`,
    );
    const started = await runTool(process.execPath, ['dist/cli/main.js', 'run', '--config', path]);
    expect(started.code).toBe(2);
    expect(started.stderr).toContain('relay "metadata" upstream 169.254.169.254:80');
    rmSync(dir, { recursive: true, force: true });
  });
});
