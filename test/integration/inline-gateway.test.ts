// The inline gateway with real clients: curl through the HTTP proxy and SOCKS5, storescu through
// a DICOM relay to storescp, openssl s_server behind a CONNECT tunnel. Every server listens on
// 127.0.0.x, and the "outside" targets are 127.0.0.2 and 127.0.0.3. A lookup function the test
// gives the gateway maps names to them, so no query or packet leaves the machine.

import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningGateway, startGateway } from '../../src/cli/run.js';
import { loadConfigText } from '../../src/config/load.js';
import { pooledReadBuffers } from '../../src/proxy/reused-read-buffer.js';
import { curl } from './support/curl.js';
import { datasetSha256, spawnStorescp } from './support/dicom.js';
import { readEvents } from './support/events.js';
import { testLog } from './support/log.js';
import { freePort, waitForPort } from './support/ports.js';
import { killGroup } from './support/processes.js';

const run = promisify(execFile);
const HOSTS: Record<string, string> = {
  'files.example.org': '127.0.0.2',
  'bucket.s3.amazonaws.com': '127.0.0.3',
  'evil.example.org': '127.0.0.9',
  'tls.example.org': '127.0.0.3',
};
const THRESHOLD = 2_000_000;

describe('inline gateway with real clients', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-inline-'));
  const eventsPath = join(dir, 'events.jsonl');
  const children: ChildProcess[] = [];
  let gateway: RunningGateway;
  let httpTarget: HttpServer;
  let receivedUploadBytes = 0;
  const ports = { http: 0, socks: 0, relay: 0, target: 0, storescp: 0, tls: 0 };

  const events = () => readEvents(eventsPath);
  const flush = async () => {
    await sleep(200);
  };

  beforeAll(async () => {
    ports.http = await freePort();
    ports.socks = await freePort();
    ports.relay = await freePort();
    ports.target = await freePort('127.0.0.2');
    ports.storescp = await freePort('127.0.0.2');
    ports.tls = await freePort('127.0.0.3');

    // The HTTP target: GET returns a fixed body, other methods count the body bytes received.
    httpTarget = createHttpServer((req, res) => {
      if (req.method === 'GET') {
        res.end('hello from the target\n');
        return;
      }
      req.on('data', (chunk: Buffer) => {
        receivedUploadBytes += chunk.length;
      });
      req.on('end', () => res.end('stored\n'));
    });
    await new Promise<void>((resolve) => httpTarget.listen(ports.target, '127.0.0.2', resolve));

    writeFileSync(
      join(dir, 'policy.yaml'),
      `version: 1
lists:
  cloud: { hosts: ["*.amazonaws.com"] }
rules:
  - { id: cloud-block, name: Cloud storage blocked, kind: cloud-storage, action: block, destinations: { lists: [cloud] } }
  - { id: archive-only, name: DICOM only to the archive AE, kind: destination-not-allowed, action: block,
      allowed: { ae_titles: [ARCHIVE] }, when: { protocols: [dicom] } }
  - { id: upload-limit, name: More than 2 MB per remote, kind: egress-threshold, action: block,
      threshold: ${THRESHOLD}, per: remote, window: hour, when: { protocols: [http] } }
`,
    );
    const config = loadConfigText(
      `version: 1
policy: policy.yaml
protected_networks: [127.0.0.1/32]
source_networks: [127.0.0.1/32]
denied_destinations: [127.0.0.9/32]
events: events.jsonl
listeners:
  - { name: web, type: http-proxy, listen: "127.0.0.1:${ports.http}" }
  - { name: socks, type: socks5, listen: "127.0.0.1:${ports.socks}" }
  - { name: archive, type: relay, listen: "127.0.0.1:${ports.relay}", upstream: "127.0.0.2:${ports.storescp}", protocol: dicom }
limits: { drain_timeout: 2s }
`,
      join(dir, 'gw.yaml'),
      dir,
    );
    gateway = await startGateway({
      config,
      log: testLog(),
      lookup: async (name) => {
        const address = HOSTS[name];
        if (address === undefined)
          throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
        return [{ address, family: 4 }];
      },
    });

    mkdirSync(join(dir, 'received'));
    const storescp = spawnStorescp({
      aeTitle: 'ARCHIVE',
      outputDir: join(dir, 'received'),
      port: ports.storescp,
      bitPreserving: true,
    });
    children.push(storescp);

    execFileSyncQuiet('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      '/CN=tls.example.org',
      '-days',
      '1',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ]);
    const server = spawn(
      'openssl',
      [
        's_server',
        '-accept',
        `127.0.0.3:${ports.tls}`,
        '-cert',
        join(dir, 'cert.pem'),
        '-key',
        join(dir, 'key.pem'),
        '-www',
        '-quiet',
      ],
      {
        detached: true,
        stdio: 'ignore',
      },
    );
    children.push(server);
    await waitForPort('127.0.0.2', ports.storescp);
    await waitForPort('127.0.0.3', ports.tls);
  });

  afterAll(async () => {
    await gateway?.stop();
    for (const child of children) killGroup(child);
    httpTarget?.close();
    if (process.env.TOLLGATE_KEEP === undefined) rmSync(dir, { recursive: true, force: true });
    else process.stderr.write(`kept ${dir}\n`);
  });

  it('forwards an absolute-form GET through the HTTP proxy', async () => {
    const result = await curl([
      '-x',
      `http://127.0.0.1:${ports.http}`,
      `http://files.example.org:${ports.target}/a`,
    ]);
    expect(result.stdout).toBe('hello from the target\n');
    await flush();
    const requests = events().filter(
      (e) => e.event.action === 'http-request' && JSON.stringify(e).includes('files.example.org'),
    );
    expect(requests).toHaveLength(1);
  });

  it('refuses a cloud-storage name with 403 naming the rule', async () => {
    const result = await curl([
      '-x',
      `http://127.0.0.1:${ports.http}`,
      '-w',
      '%{http_code}',
      `http://bucket.s3.amazonaws.com:${ports.target}/x`,
    ]);
    expect(result.stdout).toBe(
      'tollgate: destination refused by rule cloud-block (Cloud storage blocked)\n403',
    );
    await flush();
    const blocked = events().filter((e) => e.event.action === 'connection-blocked');
    expect(
      blocked.some(
        (e) =>
          e.rule.id === 'cloud-block' && e.tollgate.remote.domain === 'bucket.s3.amazonaws.com',
      ),
    ).toBe(true);
  });

  it('refuses a name that resolves into a denied range', async () => {
    const result = await curl([
      '-x',
      `http://127.0.0.1:${ports.http}`,
      '-w',
      '%{http_code}',
      `http://evil.example.org:${ports.target}/`,
    ]);
    expect(result.stdout).toContain('rule denied-destinations');
    expect(result.stdout.endsWith('403')).toBe(true);
  });

  it('refuses a CONNECT to the gateway itself', async () => {
    const result = await curl([
      '-p',
      '-x',
      `http://127.0.0.1:${ports.http}`,
      '-w',
      '%{http_code}',
      `http://127.0.0.1:${ports.socks}/`,
    ]);
    expect(result.code).not.toBe(0);
    expect(result.stdout).toContain('000');
    await flush();
    expect(
      events().some(
        (e) => e.event.action === 'connection-blocked' && e.rule.id === 'gateway-address',
      ),
    ).toBe(true);
  });

  it('refuses the gateway as an IPv4-mapped address', async () => {
    for (const host of ['[::ffff:127.0.0.1]', '[::ffff:7f00:1]']) {
      const result = await curl([
        '-g',
        '-x',
        `http://127.0.0.1:${ports.http}`,
        '-w',
        '%{http_code}',
        `http://${host}:${ports.socks}/`,
      ]);
      expect(result.stdout).toContain('rule gateway-address');
      expect(result.stdout.endsWith('403')).toBe(true);
    }
  });

  it('tunnels TLS through CONNECT and reads the SNI', async () => {
    const result = await curl([
      '-k',
      '-x',
      `http://127.0.0.1:${ports.http}`,
      `https://tls.example.org:${ports.tls}/`,
    ]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('s_server');
    await flush();
    const hellos = events().filter((e) => e.event.action === 'tls-client-hello');
    expect(
      hellos.some(
        (e) =>
          e.tls?.client?.server_name === 'tls.example.org' ||
          JSON.stringify(e).includes('tls.example.org'),
      ),
    ).toBe(true);
  });

  it('cuts a CONNECT tunnel whose SNI names cloud storage', async () => {
    const result = await curl([
      '-k',
      '-x',
      `http://127.0.0.1:${ports.http}`,
      '--connect-to',
      `bucket.s3.amazonaws.com:443:127.0.0.3:${ports.tls}`,
      'https://bucket.s3.amazonaws.com/',
    ]);
    expect(result.code).not.toBe(0);
    await flush();
    const cuts = events().filter(
      (e) => e.event.action === 'transfer-cut' && e.rule.id === 'cloud-block',
    );
    expect(cuts.length).toBe(1);
    expect(cuts[0]!.tollgate.enforcement.bytes_to_upstream).toBe(0);
  });

  it('connects SOCKS5 clients to domain names and refuses cloud storage', async () => {
    const ok = await curl([
      '--socks5-hostname',
      `127.0.0.1:${ports.socks}`,
      `http://files.example.org:${ports.target}/b`,
    ]);
    expect(ok.stdout).toBe('hello from the target\n');
    const ip = await curl([
      '--socks5',
      `127.0.0.1:${ports.socks}`,
      `http://127.0.0.2:${ports.target}/c`,
    ]);
    expect(ip.stdout).toBe('hello from the target\n');
    const refused = await curl([
      '--socks5-hostname',
      `127.0.0.1:${ports.socks}`,
      `http://bucket.s3.amazonaws.com:${ports.target}/`,
    ]);
    expect(refused.code).toBe(97);
    // curl prints the SOCKS reply code: 2 is "connection not allowed by ruleset".
    expect(refused.stderr).toContain('(2)');
  });

  it('cuts an upload over the threshold mid-way', async () => {
    const file = join(dir, 'upload.bin');
    writeFileSync(file, Buffer.alloc(8_000_000, 7));
    receivedUploadBytes = 0;
    const result = await curl([
      '-x',
      `http://127.0.0.1:${ports.http}`,
      '-T',
      file,
      `http://files.example.org:${ports.target}/upload`,
    ]);
    expect(result.code).not.toBe(0);
    await flush();
    // The reset discards what still sits in the socket buffers, so the target may see less
    // than the gateway forwarded, never more.
    expect(receivedUploadBytes).toBeLessThanOrEqual(THRESHOLD + 65_536);
    const cut = events().find(
      (e) => e.event.action === 'transfer-cut' && e.rule.id === 'upload-limit',
    );
    expect(cut).toBeDefined();
    // The read that crosses the threshold is metered but not forwarded, and bytes still in the
    // gateway's write buffer at the reset are not counted: at most a few 64 KiB reads short.
    expect(cut!.tollgate.enforcement.bytes_to_upstream).toBeLessThanOrEqual(THRESHOLD);
    expect(cut!.tollgate.enforcement.bytes_to_upstream).toBeGreaterThan(THRESHOLD - 4 * 65_536);
  });

  it('refuses a client outside the source networks', async () => {
    const before = gateway.gateway.stats.refusedClients;
    const result = await curl([
      '--interface',
      '127.0.0.5',
      '-x',
      `http://127.0.0.1:${ports.http}`,
      `http://files.example.org:${ports.target}/`,
    ]);
    expect(result.code).not.toBe(0);
    expect(gateway.gateway.stats.refusedClients).toBe(before + 1);

    // A second attempt within a minute is counted but writes no second event.
    await curl(['--interface', '127.0.0.5', '-x', `http://127.0.0.1:${ports.http}`, 'http://x/']);
    expect(gateway.gateway.stats.refusedClients).toBe(before + 2);
    await flush();
    const refused = events().filter(
      (e) => e.event.action === 'connection-blocked' && e.rule.id === 'source-networks',
    );
    expect(refused).toHaveLength(1);
    expect(refused[0]!.source.ip).toBe('127.0.0.5');
    expect(refused[0]!.destination.port).toBe(ports.http);
    expect(refused[0]!.tollgate.enforcement.reason).toBe('source-not-allowed');
  });

  it('relays storescu to storescp byte for byte', async () => {
    const datasets = join(dir, 'datasets');
    execFileSyncQuiet('/usr/bin/python3', [
      join(process.cwd(), 'scripts/sample/make-datasets.py'),
      datasets,
    ]);
    const files = readdirSync(join(datasets, 'study-5')).map((name) =>
      join(datasets, 'study-5', name),
    );
    await run('storescu', [
      '-aet',
      'MODALITY',
      '-aec',
      'ARCHIVE',
      '-xs',
      '127.0.0.1',
      String(ports.relay),
      ...files,
    ]);
    await sleep(500);
    // storescp writes its own file meta header, so the datasets after it are compared.
    const received = readdirSync(join(dir, 'received')).map((name) =>
      datasetSha256(join(dir, 'received', name)),
    );
    const sent = files.map(datasetSha256);
    expect(received.sort()).toEqual(sent.sort());
    // The gateway's splices read into reused buffers, which return to the pool as they close.
    expect(pooledReadBuffers()).toBeGreaterThanOrEqual(2);
    await flush();
    const association = events().find(
      (e) => e.event.action === 'dicom-association' && JSON.stringify(e).includes('MODALITY'),
    );
    expect(association).toBeDefined();
    expect(JSON.stringify(association)).toContain(`"instances":${files.length}`);
  }, 120_000);

  it('rejects an association to an AE outside the allow-list', async () => {
    const files = readdirSync(join(dir, 'datasets', 'study-5')).map((name) =>
      join(dir, 'datasets', 'study-5', name),
    );
    const result = await run('storescu', [
      '-aet',
      'MODALITY',
      '-aec',
      'ELSEWHERE',
      '127.0.0.1',
      String(ports.relay),
      files[0]!,
    ]).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string; stdout: string }) => ({
        code: error.code,
        stderr: `${error.stdout}${error.stderr}`,
      }),
    );
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/Association Rejected/i);
    await flush();
    expect(
      events().some(
        (e) =>
          e.event.action === 'connection-blocked' &&
          e.rule.id === 'archive-only' &&
          e.tollgate.enforcement.answer === 'a-associate-rj',
      ),
    ).toBe(true);
  }, 60_000);
});

function execFileSyncQuiet(command: string, args: string[]): void {
  execFileSync(command, args, { stdio: 'ignore' });
}
