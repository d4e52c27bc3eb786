// Runs `tollgate sniff --interface` from dist/ against live traffic between two network
// namespaces this test creates, plus the command line's errors for a live interface.
// 198.51.100.0/30 (TEST-NET-2) exists only on the test's veth pair inside those namespaces.

import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
// The command line runs from dist/, which `npm test` builds before vitest starts.
const cliPath = join(repo, 'dist', 'cli', 'main.js');

/** A fixed key, so sniff does not warn about a random pseudonym key on standard error. */
const env = { ...process.env, TOLLGATE_PSEUDONYM_KEY: `hex:${'0123456789abcdef'.repeat(2)}` };

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

/** Why the namespace test cannot run here, or null when it can. */
const namespaceSupport = (() => {
  if (process.getuid?.() !== 0) return 'needs root to create network namespaces';
  for (const tool of ['ip', 'tcpdump', 'curl']) {
    if (!hasTool(tool)) return `needs ${tool}`;
  }
  if (!existsSync(cliPath)) return 'needs dist/ built by npm run build';
  const probe = `tg-probe-${randomBytes(4).toString('hex')}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'ignore' });
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'ignore' });
    return null;
  } catch {
    return 'ip netns add is not permitted here';
  }
})();

/** An HTTP/1.1 server that accepts PUT and reads the whole body before it answers 201. */
const PUT_SERVER = `
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def do_PUT(self):
        left = int(self.headers.get('Content-Length', '0'))
        while left > 0:
            left -= len(self.rfile.read(min(left, 65536)))
        self.send_response(201)
        self.send_header('Content-Length', '0')
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
`;

import { hasTool } from './support/processes.js';

interface EcsEvent {
  event: { action: string };
  source: { ip: string; bytes?: number };
  destination: { ip: string; port: number; bytes?: number };
  http?: { request: { method: string } };
  tollgate: { egress?: { bytes: number } };
}

describe.skipIf(namespaceSupport !== null)('sniff --interface between namespaces', () => {
  const suffix = randomBytes(3).toString('hex');
  const inside = `tg-sniff-${suffix}-a`;
  const outside = `tg-sniff-${suffix}-b`;
  const insideLink = `tsa${suffix}`;
  const outsideLink = `tsb${suffix}`;
  const dir = mkdtempSync(join(tmpdir(), 'tg-sniff-live-'));
  const upload = randomBytes(300_000);
  let server: ChildProcess | undefined;
  let sniff: ChildProcess | undefined;

  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'ignore' });

  beforeAll(async () => {
    ip('netns', 'add', inside);
    ip('netns', 'add', outside);
    ip('link', 'add', insideLink, 'type', 'veth', 'peer', 'name', outsideLink);
    ip('link', 'set', insideLink, 'netns', inside);
    ip('link', 'set', outsideLink, 'netns', outside);
    ip('-n', inside, 'addr', 'add', '198.51.100.1/30', 'dev', insideLink);
    ip('-n', outside, 'addr', 'add', '198.51.100.2/30', 'dev', outsideLink);
    ip('-n', inside, 'link', 'set', insideLink, 'up');
    ip('-n', outside, 'link', 'set', outsideLink, 'up');
    writeFileSync(join(dir, 'study.bin'), upload);
    writeFileSync(join(dir, 'put-server.py'), PUT_SERVER);
    server = spawn(
      'ip',
      [
        'netns',
        'exec',
        outside,
        '/usr/bin/python3',
        join(dir, 'put-server.py'),
        '198.51.100.2',
        '8080',
      ],
      { stdio: 'ignore', detached: true },
    );
  });

  afterAll(() => {
    for (const child of [sniff, server]) {
      if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    }
    for (const name of [inside, outside]) {
      try {
        ip('netns', 'del', name);
      } catch {
        // Already gone.
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports an upload seen live and names the interface', async () => {
    const eventsPath = join(dir, 'events.jsonl');
    sniff = spawn(
      'ip',
      [
        'netns',
        'exec',
        inside,
        process.execPath,
        cliPath,
        'sniff',
        '-i',
        insideLink,
        '--protected',
        '198.51.100.1/32',
        '--events',
        eventsPath,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env },
    );
    let stderr = '';
    sniff.stderr?.setEncoding('utf8');
    sniff.stderr?.on('data', (text: string) => {
      stderr += text;
    });
    const exited = new Promise<number | null>((resolve) => sniff?.on('close', resolve));
    // tcpdump prints no readiness line through sniff, so wait for it to open the interface.
    await sleep(1500);

    const curl = spawnSync(
      'ip',
      [
        'netns',
        'exec',
        inside,
        'curl',
        '-sS',
        '--retry',
        '5',
        '--retry-connrefused',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '-H',
        'Expect:',
        '-T',
        join(dir, 'study.bin'),
        'http://198.51.100.2:8080/upload/study.bin',
      ],
      { encoding: 'utf8' },
    );
    expect(curl.stderr).toBe('');
    expect(curl.stdout).toBe('201');

    // tcpdump runs with --immediate-mode; 1 s lets the last packets reach sniff.
    await sleep(1000);
    // ip netns exec replaces itself with node, so the signal reaches sniff directly.
    sniff.kill('SIGINT');
    const status = await exited;

    expect(status, stderr).toBe(EXIT_OK);
    expect(stderr).toContain(`interface ${insideLink}`);
    expect(stderr).toMatch(/flows: 1 crossing the protected boundary/);

    const events = readFileSync(eventsPath, 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as EcsEvent);
    const flows = events.filter((event) => event.event.action === 'network-flow');
    expect(flows).toHaveLength(1);
    const [flow] = flows;
    expect(flow?.source.ip).toBe('198.51.100.1');
    expect(flow?.destination.ip).toBe('198.51.100.2');
    expect(flow?.destination.port).toBe(8080);
    // Egress is the PUT body plus its request header.
    expect(flow?.source.bytes).toBeGreaterThan(upload.length);
    expect(flow?.source.bytes).toBeLessThan(upload.length + 1024);

    const requests = events.filter((event) => event.event.action === 'http-request');
    expect(requests).toHaveLength(1);
    expect(requests[0]?.http?.request.method).toBe('PUT');
  }, 30_000);
});

describe.skipIf(!existsSync(cliPath))('sniff --interface command line', () => {
  const cli = (args: string[]) =>
    spawnSync(process.execPath, [cliPath, 'sniff', ...args], {
      encoding: 'utf8',
      timeout: 20_000,
      env,
    });

  it.skipIf(!hasTool('tcpdump'))('missing interface is a one-line error', () => {
    const run = cli(['-i', 'tg-no-such-if0', '--protected', '198.51.100.1/32', '--no-summary']);
    expect(run.status).toBe(EXIT_FAILED);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/^tollgate sniff: .*tg-no-such-if0/);
    expect(run.stdout).toBe('');
  });

  it('interface and capture file together is a usage error', () => {
    const run = cli(['-i', 'lo', 'capture.pcap', '--protected', '198.51.100.1/32']);
    expect(run.status).toBe(EXIT_USAGE);
    expect(run.stderr).toBe(
      'tollgate sniff: give either a capture file or --interface, not both\n',
    );
    expect(run.stdout).toBe('');
  });
});
