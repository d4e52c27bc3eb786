import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningGateway, startGateway } from '../../src/cli/run.js';
import { loadConfigText } from '../../src/config/load.js';
import { curl } from './support/curl.js';
import { readEvents } from './support/events.js';
import { testLog } from './support/log.js';
import { freePort } from './support/ports.js';

const RATE = 1_000_000;
const THROTTLE_AFTER = 100_000;
const THRESHOLD = 1_000_000;
const UPLOAD = 3_000_000;
const HOSTS: Record<string, string> = { 'drive.example.net': '127.0.0.6' };

describe('inline graduated actions', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-actions-'));
  const eventsPath = join(dir, 'events.jsonl');
  const uploadPath = join(dir, 'upload.bin');
  const targets: HttpServer[] = [];
  /** Body bytes each target received, by its address. */
  const received = new Map<string, number>();
  const targetPorts = new Map<string, number>();
  let gateway: RunningGateway;
  let httpPort = 0;
  let socksPort = 0;

  const events = () => readEvents(eventsPath);
  const ruleEvents = (ruleId: string) => events().filter((e) => e.rule?.id === ruleId);
  const upload = (address: string, via: string[]) =>
    curl([...via, '-T', uploadPath, `http://${address}:${targetPorts.get(address)}/upload`], {
      maxTime: 30,
    });
  const viaHttp = () => ['-x', `http://127.0.0.1:${httpPort}`];
  const viaSocks = () => ['--socks5', `127.0.0.1:${socksPort}`];

  beforeAll(async () => {
    writeFileSync(uploadPath, Buffer.alloc(UPLOAD, 0x5a));
    for (const address of ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6']) {
      const port = await freePort(address);
      const server = createHttpServer((req, res) => {
        req.on('data', (chunk: Buffer) => {
          received.set(address, (received.get(address) ?? 0) + chunk.length);
        });
        req.on('end', () => res.end('stored\n'));
      });
      await new Promise<void>((resolve) => server.listen(port, address, resolve));
      targets.push(server);
      targetPorts.set(address, port);
    }
    httpPort = await freePort('127.0.0.1');
    socksPort = await freePort('127.0.0.1');

    writeFileSync(
      join(dir, 'policy.yaml'),
      `version: 1
rules:
  - { id: slow-down, name: Throttle uploads to 127.0.0.3, kind: egress-threshold, action: throttle,
      rate: ${RATE}, threshold: ${THROTTLE_AFTER}, per: remote, window: hour,
      when: { destination: { cidrs: [127.0.0.3/32] } } }
  - { id: block-dry, name: Dry-run block to 127.0.0.4, kind: egress-threshold, action: block,
      dry_run: true, threshold: ${THRESHOLD}, per: remote, window: hour,
      when: { destination: { cidrs: [127.0.0.4/32] } } }
  - { id: alert-only, name: Alert on uploads to 127.0.0.5, kind: egress-threshold, action: alert,
      threshold: ${THRESHOLD}, per: remote, window: hour,
      when: { destination: { cidrs: [127.0.0.5/32] } } }
  - { id: cloud-dry, name: Dry-run cloud block, kind: cloud-storage, action: block, dry_run: true,
      destinations: { hosts: [drive.example.net] } }
`,
    );
    const config = loadConfigText(
      `version: 1
policy: policy.yaml
protected_networks: [127.0.0.1/32]
events: events.jsonl
listeners:
  - { name: web, type: http-proxy, listen: "127.0.0.1:${httpPort}" }
  - { name: socks, type: socks5, listen: "127.0.0.1:${socksPort}" }
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
  });

  afterAll(async () => {
    await gateway?.stop();
    for (const server of targets) server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('throttles an HTTP proxy upload to the rule rate', async () => {
    const plain = await upload('127.0.0.2', viaHttp());
    const throttled = await upload('127.0.0.3', viaHttp());
    expect(plain.code).toBe(0);
    expect(throttled.code).toBe(0);
    expect(throttled.stdout).toBe('stored\n');
    expect(received.get('127.0.0.3')).toBe(UPLOAD);
    // The first THROTTLE_AFTER bytes pass before the rule fires; the rest go at RATE at most.
    const minimumMs = ((UPLOAD - THROTTLE_AFTER) / RATE) * 1000;
    expect(throttled.ms).toBeGreaterThanOrEqual(minimumMs);
    expect(plain.ms).toBeLessThan(throttled.ms / 3);
    await sleep(100);
    const alerts = ruleEvents('slow-down').filter((e) => e.event.kind === 'alert');
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.tollgate.verdict).toBe('throttle');
    expect(ruleEvents('slow-down').some((e) => e.event.action === 'transfer-cut')).toBe(false);
  }, 40_000);

  it('throttles a SOCKS5 upload from the first byte once over', async () => {
    const before = received.get('127.0.0.3') ?? 0;
    const plain = await upload('127.0.0.2', viaSocks());
    const throttled = await upload('127.0.0.3', viaSocks());
    expect(plain.code).toBe(0);
    expect(throttled.code).toBe(0);
    expect((received.get('127.0.0.3') ?? 0) - before).toBe(UPLOAD);
    // The remote's meter is over the threshold for this hour, so every byte is throttled.
    expect(throttled.ms).toBeGreaterThanOrEqual((UPLOAD / RATE) * 1000);
    expect(plain.ms).toBeLessThan(throttled.ms / 3);
    // The limiter goes with the remote's last flow, which closes soon after curl returns.
    for (let attempt = 0; attempt < 20 && gateway.gateway.rateLimiters.size > 0; attempt++)
      await sleep(50);
    expect(gateway.gateway.rateLimiters.size).toBe(0);
  }, 40_000);

  it('lets a dry-run block rule pass the transfer', async () => {
    const result = await upload('127.0.0.4', viaHttp());
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('stored\n');
    expect(received.get('127.0.0.4')).toBe(UPLOAD);
    await sleep(100);
    const alerts = ruleEvents('block-dry').filter((e) => e.event.kind === 'alert');
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.tollgate.verdict).toBe('would-block');
    expect(alerts[0]!.tollgate.dry_run).toBe(true);
    expect(ruleEvents('block-dry').some((e) => e.event.action === 'transfer-cut')).toBe(false);
  }, 40_000);

  it('lets a dry-run block rule pass through SOCKS5', async () => {
    const before = received.get('127.0.0.4') ?? 0;
    const result = await upload('127.0.0.4', viaSocks());
    expect(result.code).toBe(0);
    expect((received.get('127.0.0.4') ?? 0) - before).toBe(UPLOAD);
  }, 40_000);

  it('lets an alert-only rule pass the transfer', async () => {
    const result = await upload('127.0.0.5', viaHttp());
    expect(result.code).toBe(0);
    expect(received.get('127.0.0.5')).toBe(UPLOAD);
    await sleep(100);
    const alerts = ruleEvents('alert-only').filter((e) => e.event.kind === 'alert');
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.tollgate.verdict).toBe('alert');
    expect(events().some((e) => e.event.action === 'transfer-cut')).toBe(false);
  }, 40_000);

  it('connects to a dry-run cloud-storage name', async () => {
    const result = await curl(
      [
        '--socks5-hostname',
        `127.0.0.1:${socksPort}`,
        '-T',
        uploadPath,
        `http://drive.example.net:${targetPorts.get('127.0.0.6')}/upload`,
      ],
      { maxTime: 30 },
    );
    expect(result.code).toBe(0);
    expect(received.get('127.0.0.6')).toBe(UPLOAD);
    await sleep(100);
    const alerts = ruleEvents('cloud-dry').filter((e) => e.event.kind === 'alert');
    expect(alerts.length).toBeGreaterThanOrEqual(1);
    expect(alerts[0]!.tollgate.verdict).toBe('would-block');
    expect(events().some((e) => e.event.action === 'connection-blocked')).toBe(false);
  }, 40_000);
});
