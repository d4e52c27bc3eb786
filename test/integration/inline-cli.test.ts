// `tollgate run` as users start it: the built CLI as a child process, with signals. SIGHUP
// reloads the policy (an invalid one keeps the running policy), SIGTERM stops accepting, lets
// an in-flight transfer finish within drain_timeout and flushes the events to the file.
// Targets listen on 127.0.0.2 and 127.0.0.3; the gateway's clients come from 127.0.0.1.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curl } from './support/curl.js';
import { freePort, isListening } from './support/ports.js';
import { killGroup } from './support/processes.js';

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
    if (process.env.TOLLGATE_SKIP_BUILD === undefined) {
      // Type errors elsewhere in the tree still emit JavaScript, so the exit code is ignored.
      await run('npx', ['tsc', '-p', 'tsconfig.build.json']).catch(() => {});
    }
    expect(existsSync('dist/cli/main.js')).toBe(true);

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
