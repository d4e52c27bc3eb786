// The admin API over real HTTP on 127.0.0.1: a gateway started by startGateway with an admin
// section, requests from node:http and raw sockets, and the pino log kept in memory.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AdminServer, startAdminServer } from '../../../src/admin/server.js';
import { type RunningGateway, startGateway } from '../../../src/cli/run.js';
import { loadConfigText } from '../../../src/config/load.js';

const TOKEN = 'unit-test-admin-token-9f3b7c1e';
const POLICY = `version: 1
name: admin-test
rules:
  - { id: big-upload, name: More than 1 kB per remote, kind: egress-threshold, action: alert,
      threshold: 1000, per: remote, window: hour }
`;

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no port assigned');
  return address.port;
}

function send(
  port: number,
  method: string,
  path: string,
  options: { token?: string | null; headers?: Record<string, string>; body?: string[] } = {},
): Promise<Reply> {
  const token = options.token === undefined ? TOKEN : options.token;
  const headers: Record<string, string> = { ...options.headers };
  if (token !== null) headers.Authorization = `Bearer ${token}`;
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    req.on('error', reject);
    for (const part of options.body ?? []) req.write(part);
    req.end();
  });
}

/** Writes `text` on a raw connection and collects what comes back until the server closes it. */
function raw(port: number, text: string): Promise<{ reply: string; elapsedMs: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => socket.write(text));
    let reply = '';
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
    });
    socket.on('close', () => resolve({ reply, elapsedMs: Date.now() - started }));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('no close within 10 s')));
  });
}

describe('admin API', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-admin-'));
  const logLines: string[] = [];
  const log = pino(
    { level: 'debug' },
    new Writable({
      write(chunk, _encoding, callback) {
        logLines.push(chunk.toString());
        callback();
      },
    }),
  );
  let running: RunningGateway;
  let port: number;
  let proxyPort: number;

  beforeAll(async () => {
    writeFileSync(join(dir, 'policy.yaml'), POLICY);
    writeFileSync(join(dir, 'admin.token'), `${TOKEN}\n`, { mode: 0o600 });
    port = await freePort();
    proxyPort = await freePort();
    const config = loadConfigText(
      `version: 1
policy: policy.yaml
protected_networks: [10.0.0.0/8, 127.0.0.1/32]
events: events.jsonl
listeners:
  - { name: web, type: http-proxy, listen: "127.0.0.1:${proxyPort}" }
admin: { listen: "127.0.0.1:${port}", token_file: admin.token }
`,
      join(dir, 'gw.yaml'),
      dir,
    );
    running = await startGateway({ config, log });
  });

  afterAll(async () => {
    await running?.stop();
  });

  describe('authentication', () => {
    it.each([
      ['no Authorization header', null, '/health'],
      ['a wrong token', 'unit-test-admin-token-9f3b7c1f', '/health'],
      ['an empty token', '', '/metrics'],
      ['a wrong token on an unknown path', 'nope-nope-nope-nope', '/secret'],
    ])('rejects %s with 401 and no detail', async (_name, token, path) => {
      const reply = await send(port, 'GET', path, { token });
      expect(reply.status).toBe(401);
      expect(reply.body).toBe('');
      expect(reply.headers['www-authenticate']).toBe('Bearer realm="tollgate"');
    });

    it('rejects the Basic scheme with the right secret', async () => {
      const basic = Buffer.from(`admin:${TOKEN}`).toString('base64');
      const reply = await send(port, 'GET', '/health', {
        token: null,
        headers: { Authorization: `Basic ${basic}` },
      });
      expect(reply.status).toBe(401);
    });

    it('rejects before reading a body', async () => {
      const reply = await send(port, 'POST', '/reload', { token: null, body: ['x'.repeat(100)] });
      expect(reply.status).toBe(401);
      expect(reply.headers.connection).toBe('close');
    });
  });

  describe('routing', () => {
    it('answers an unknown path with 404', async () => {
      const reply = await send(port, 'GET', '/nope');
      expect(reply.status).toBe(404);
      expect(JSON.parse(reply.body)).toEqual({ error: 'not found' });
    });

    it('answers a wrong method with 405 and Allow', async () => {
      const post = await send(port, 'POST', '/health');
      expect(post.status).toBe(405);
      expect(post.headers.allow).toBe('GET, HEAD');
      const get = await send(port, 'GET', '/reload');
      expect(get.status).toBe(405);
      expect(get.headers.allow).toBe('POST');
      expect(JSON.parse(get.body).error).toBe('method GET not allowed; use POST');
    });

    it('serves HEAD without a body', async () => {
      const reply = await send(port, 'HEAD', '/health');
      expect(reply.status).toBe(200);
      expect(reply.body).toBe('');
    });
  });

  describe('GET /health', () => {
    it('reports the version, uptime and bound listeners', async () => {
      const reply = await send(port, 'GET', '/health');
      expect(reply.status).toBe(200);
      expect(reply.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(reply.headers['cache-control']).toBe('no-store');
      const body = JSON.parse(reply.body);
      expect(body.status).toBe('ok');
      expect(body.version).toMatch(/^\d+\.\d+\.\d+/);
      expect(body.uptime_seconds).toBeGreaterThanOrEqual(0);
      expect(Date.parse(body.started_at)).not.toBeNaN();
      expect(body.listeners).toEqual([
        { name: 'web', type: 'http-proxy', host: '127.0.0.1', port: proxyPort },
      ]);
      expect(body.flows_open).toBe(0);
    });
  });

  describe('GET /metrics and /meters after egress', () => {
    beforeAll(() => {
      // Egress seen by the engine as the proxy would report it: 10.0.0.5 uploads 1500 bytes.
      const engine = running.gateway.engine;
      const now = running.gateway.now();
      const flow = engine.openFlow({
        initiator: { ip: '10.0.0.5', port: 40000 },
        responder: { ip: '198.51.100.7', port: 8443 },
        ts: now,
      });
      flow.data(0, Buffer.alloc(1500, 0x41), now);
      const open = engine.openFlow({
        initiator: { ip: '10.0.0.6', port: 40001 },
        responder: { ip: '198.51.100.8', port: 8443 },
        ts: now,
      });
      open.data(0, Buffer.alloc(200, 0x42), now);
      flow.end(now + 1, 'fin');
    });

    it('serves Prometheus text with the gateway counters', async () => {
      const reply = await send(port, 'GET', '/metrics');
      expect(reply.status).toBe(200);
      expect(reply.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
      const lines = reply.body.split('\n');
      expect(lines).toContain('# TYPE tollgate_egress_bytes_total counter');
      expect(lines).toContain('tollgate_egress_bytes_total 1700');
      expect(lines).toContain('tollgate_flows_open 1');
      expect(lines).toContain('tollgate_alerts_total{rule="big-upload"} 1');
      expect(lines).toContain('tollgate_events_total{action="egress-threshold-exceeded"} 1');
      expect(lines).toContain('tollgate_events_total{action="network-flow"} 1');
      expect(lines).toContain('tollgate_connections_accepted_total 0');
      expect(lines).toContain('tollgate_connections_refused_total{reason="source"} 0');
      expect(lines).toContain('tollgate_meter_evictions_total 0');
      expect(lines.some((line) => line.startsWith('process_resident_memory_bytes '))).toBe(true);
    });

    it('lists the top remotes by rolling bytes', async () => {
      const reply = await send(port, 'GET', '/meters?per=remote&top=20');
      expect(reply.status).toBe(200);
      const body = JSON.parse(reply.body);
      expect(body.per).toBe('remote');
      expect(body.top).toBe(20);
      expect(body.total).toBe(2);
      expect(body.entries.map((entry: { key: string }) => entry.key)).toEqual([
        '198.51.100.7',
        '198.51.100.8',
      ]);
      const first = body.entries[0];
      expect(first.remote_ip).toBe('198.51.100.7');
      expect(first.source_ip).toBe('10.0.0.5');
      expect(first.rolling).toEqual({ bytes: 1500, instances: 0, files: 0 });
      expect(first.hour.bytes).toBe(1500);
      expect(first.hour.start).toMatch(/T\d\d:00:00\.000Z$/);
    });

    it('applies per and top', async () => {
      const pairs = JSON.parse((await send(port, 'GET', '/meters?per=source-remote&top=1')).body);
      expect(pairs.total).toBe(2);
      expect(pairs.entries.map((entry: { key: string }) => entry.key)).toEqual([
        '10.0.0.5>198.51.100.7',
      ]);
      const defaults = JSON.parse((await send(port, 'GET', '/meters')).body);
      expect(defaults.per).toBe('remote');
      expect(defaults.top).toBe(20);
    });

    it.each([
      ['per=host', 'invalid per "host"; expected one of remote, source-remote, user'],
      ['top=0', 'invalid top "0"; expected a whole number from 1 to 1000'],
      ['top=1001', 'invalid top "1001"; expected a whole number from 1 to 1000'],
      ['top=2.5', 'invalid top "2.5"; expected a whole number from 1 to 1000'],
      ['top=', 'invalid top ""; expected a whole number from 1 to 1000'],
      ['limit=3', 'unknown query parameter "limit"; expected per or top'],
    ])('rejects %s with 400', async (query, message) => {
      const reply = await send(port, 'GET', `/meters?${query}`);
      expect(reply.status).toBe(400);
      expect(JSON.parse(reply.body)).toEqual({ error: message });
    });

    it('quotes at most 64 characters of a bad value', async () => {
      const reply = await send(port, 'GET', `/meters?per=${'p'.repeat(500)}`);
      expect(reply.status).toBe(400);
      expect(JSON.parse(reply.body).error).toContain(`"${'p'.repeat(64)}..."`);
    });
  });

  describe('POST /reload', () => {
    it('reloads a valid policy and reports it', async () => {
      writeFileSync(
        join(dir, 'policy.yaml'),
        `${POLICY}  - { id: second, name: Second rule, kind: egress-threshold, action: alert, threshold: 5000 }\n`,
      );
      const reply = await send(port, 'POST', '/reload');
      expect(reply.status).toBe(200);
      expect(JSON.parse(reply.body)).toEqual({
        status: 'reloaded',
        policy: join(dir, 'policy.yaml'),
        name: 'admin-test',
        rules: 2,
      });
    });

    it('answers 422 with the validation errors and keeps the policy', async () => {
      writeFileSync(join(dir, 'policy.yaml'), `${POLICY}  - { id: broken, kind: nonsense }\n`);
      const reply = await send(port, 'POST', '/reload');
      expect(reply.status).toBe(422);
      const body = JSON.parse(reply.body);
      expect(body.status).toBe('invalid');
      expect(body.message).toBe('the running policy stays');
      expect(body.errors.length).toBeGreaterThan(0);
      for (const error of body.errors) {
        expect(error).toMatch(new RegExp(`^${join(dir, 'policy.yaml')}:6:\\d+ rules\\[1\\]`));
      }
      writeFileSync(join(dir, 'policy.yaml'), POLICY);
      expect(running.reloadPolicy()).toMatchObject({ ok: true, rules: 1 });
    });

    it('rejects a declared body over 4 KiB with 413', async () => {
      const reply = await send(port, 'POST', '/reload', { body: ['x'.repeat(4097)] });
      expect(reply.status).toBe(413);
      expect(JSON.parse(reply.body)).toEqual({
        error: 'request body exceeds the maximum 4096 bytes',
      });
      expect(reply.headers.connection).toBe('close');
    });

    it('rejects a chunked body over 4 KiB with 413', async () => {
      const reply = await send(port, 'POST', '/reload', {
        headers: { 'Transfer-Encoding': 'chunked' },
        body: ['x'.repeat(3000), 'y'.repeat(3000)],
      });
      expect(reply.status).toBe(413);
    });

    it('accepts a body within the limit', async () => {
      writeFileSync(join(dir, 'policy.yaml'), POLICY);
      const reply = await send(port, 'POST', '/reload', { body: ['{}'] });
      expect(reply.status).toBe(200);
    });
  });

  describe('lowered limits', () => {
    let admin: AdminServer;

    beforeAll(async () => {
      admin = await startAdminServer({
        listen: { host: '127.0.0.1', port: 0 },
        allowNonLoopback: false,
        token: TOKEN,
        gateway: running.gateway,
        listeners: [],
        version: '0.0.0',
        reload: () => ({ ok: true, source: 'inline', name: 'inline', rules: 0 }),
        log,
        limits: { maxBodyBytes: 10, headerTimeoutMs: 300, maxHeaderBytes: 1024 },
      });
    });

    afterAll(async () => {
      await admin?.close();
    });

    it('applies a lowered body limit', async () => {
      const over = await send(admin.address.port, 'POST', '/reload', { body: ['x'.repeat(11)] });
      expect(over.status).toBe(413);
      expect(JSON.parse(over.body).error).toBe('request body exceeds the maximum 10 bytes');
      const at = await send(admin.address.port, 'POST', '/reload', { body: ['x'.repeat(10)] });
      expect(at.status).toBe(200);
    });

    it('closes a connection whose head is not complete in time', async () => {
      const { reply, elapsedMs } = await raw(
        admin.address.port,
        `GET /health HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer ${TOKEN}\r\n`,
      );
      expect(reply).toMatch(/^HTTP\/1\.1 408 /);
      expect(elapsedMs).toBeGreaterThanOrEqual(250);
      expect(elapsedMs).toBeLessThan(5000);
    });

    it('rejects a head over the lowered size with 431', async () => {
      const reply = await send(admin.address.port, 'GET', '/health', {
        headers: { 'X-Padding': 'p'.repeat(2000) },
      });
      expect(reply.status).toBe(431);
    });
  });

  it('refuses to bind a non-loopback address without allow_non_loopback', async () => {
    await expect(
      startAdminServer({
        listen: { host: '192.0.2.10', port: 9180 },
        allowNonLoopback: false,
        token: TOKEN,
        gateway: running.gateway,
        listeners: [],
        version: '0.0.0',
        reload: () => ({ ok: false, errors: [] }),
        log,
      }),
    ).rejects.toThrow(
      'admin address 192.0.2.10 is not a loopback address; set admin.allow_non_loopback: true to allow it',
    );
  });

  it('logs requests and rejections but never the token', () => {
    const text = logLines.join('');
    expect(text).toContain('admin API listening');
    expect(text).toContain('admin API request without a valid token rejected');
    expect(text).toContain('policy reload requested through the admin API');
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain(TOKEN.slice(0, 16));
  });
});

describe('admin API without a token', () => {
  it('does not start and logs one line saying why', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-admin-notoken-'));
    const lines: string[] = [];
    const log = pino(
      new Writable({
        write(chunk, _encoding, callback) {
          lines.push(chunk.toString());
          callback();
        },
      }),
    );
    const config = loadConfigText(
      `version: 1
protected_networks: [10.0.0.0/8]
events: events.jsonl
listeners:
  - { name: web, type: http-proxy, listen: "127.0.0.1:${await freePort()}" }
admin: { listen: "127.0.0.1:${await freePort()}", token_file: missing.token }
`,
      join(dir, 'gw.yaml'),
      dir,
    );
    const running = await startGateway({ config, log });
    try {
      expect(running.admin).toBeNull();
      const notStarted = lines.filter((line) => line.includes('admin API not started'));
      expect(notStarted).toHaveLength(1);
      expect(JSON.parse(notStarted[0]!).msg).toBe(
        `admin API not started: cannot read token file ${join(dir, 'missing.token')}: ENOENT: no such file or directory, stat '${join(dir, 'missing.token')}'`,
      );
      expect(running.gateway.servers).toHaveLength(1);
    } finally {
      await running.stop();
    }
  });
});
