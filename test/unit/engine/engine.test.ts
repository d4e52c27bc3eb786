import { describe, expect, it } from 'vitest';
import { Engine, type EngineOptions } from '../../../src/engine/engine.js';
import type { EngineFlow } from '../../../src/engine/flow.js';
import type { FlowHandle, Verdict } from '../../../src/engine/front-end.js';
import { Pseudonymizer } from '../../../src/events/pseudonymize.js';
import { MemorySink } from '../../../src/events/sink.js';
import { CidrSet } from '../../../src/policy/cidr.js';
import { loadPolicyText } from '../../../src/policy/load.js';
import { PROTOCOLS } from '../../../src/protocols/registry.js';

const MB = 1_000_000;
const T0 = Date.UTC(2026, 10, 3, 10, 0, 0);
const MINUTE = 60_000;

type Event = Record<string, any>;

function policy(rules: string): ReturnType<typeof loadPolicyText> {
  const text = `version: 1\nname: test\nlists:\n  archives: { cidrs: [192.0.2.0/24] }\n  clouds: { hosts: [amazonaws.com] }\nrules:\n${rules}`;
  return loadPolicyText(text, 'test.yaml', '/tmp');
}

function engineWith(rules: string, mode: EngineOptions['mode'] = 'span') {
  const sink = new MemorySink();
  const engine = new Engine({
    policy: policy(rules),
    protectedNetworks: CidrSet.parse(['10.0.0.0/8']),
    sink,
    pseudonymizer: new Pseudonymizer(Buffer.alloc(32, 7), false),
    mode,
    protocols: PROTOCOLS,
    observer: { hostname: 'test', version: '0' },
  });
  const events = () => sink.events as Event[];
  return { engine, events };
}

function open(engine: Engine, remoteIp: string, ts: number, port = 443): FlowHandle {
  return engine.openFlow({
    initiator: { ip: '10.1.1.1', port: 40000 + (ts % 1000) },
    responder: { ip: remoteIp, port },
    ts,
  });
}

/** Sends `total` bytes from the inside initiator in 1 MB chunks, all at time `ts`. */
function send(flow: FlowHandle, total: number, ts: number): void {
  const chunk = Buffer.alloc(MB, 0x41);
  for (let sent = 0; sent < total; sent += MB)
    flow.data(0, chunk.subarray(0, Math.min(MB, total - sent)), ts);
}

const THRESHOLD_RULE = `  - id: egress
    name: egress over 50 MB
    kind: egress-threshold
    action: alert
    threshold: 50MB
    per: remote
    window: both
`;

describe('Engine meters and threshold rules', () => {
  it('alerts once when two flows to one remote cross the hourly threshold', () => {
    const { engine, events } = engineWith(THRESHOLD_RULE);
    const first = open(engine, '203.0.113.5', T0);
    send(first, 30 * MB, T0 + MINUTE);
    first.end(T0 + MINUTE, 'fin');
    const second = open(engine, '203.0.113.5', T0 + 2 * MINUTE);
    send(second, 30 * MB, T0 + 3 * MINUTE);
    second.end(T0 + 3 * MINUTE, 'fin');
    engine.finish(T0 + 4 * MINUTE);

    const alerts = events().filter((event) => event.event.action === 'egress-threshold-exceeded');
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.event.kind).toBe('alert');
    expect(alerts[0]!.rule.id).toBe('egress');
    expect(alerts[0]!.tollgate.remote.ip).toBe('203.0.113.5');
    expect(alerts[0]!.tollgate.meter.bytes).toBeGreaterThan(50 * MB);
  });

  it('alerts on the rolling window across an hour boundary', () => {
    const { engine, events } = engineWith(THRESHOLD_RULE);
    const flow = open(engine, '203.0.113.6', T0 + 50 * MINUTE);
    send(flow, 49 * MB, T0 + 59 * MINUTE);
    send(flow, 49 * MB, T0 + 61 * MINUTE);
    flow.end(T0 + 62 * MINUTE, 'fin');
    engine.finish(T0 + 62 * MINUTE);

    const alerts = events().filter((event) => event.event.action === 'egress-threshold-exceeded');
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.tollgate.meter.window).toBe('rolling');

    const meters = events().filter((event) => event.event.action === 'egress-meter');
    expect(meters.map((event) => event.tollgate.egress.bytes)).toEqual([49 * MB, 49 * MB]);
    expect(meters.map((event) => event.tollgate.meter.start)).toEqual([
      new Date(T0).toISOString(),
      new Date(T0 + 60 * MINUTE).toISOString(),
    ]);
  });

  it('does not alert below the threshold', () => {
    const { engine, events } = engineWith(THRESHOLD_RULE);
    const flow = open(engine, '203.0.113.7', T0);
    send(flow, 50 * MB, T0 + MINUTE);
    flow.end(T0 + MINUTE, 'fin');
    engine.finish(T0 + MINUTE);
    expect(events().some((event) => event.event.kind === 'alert')).toBe(false);
  });

  it('exempts remotes that an earlier allow rule matches', () => {
    const rules = `  - id: archives
    name: off-site archive
    kind: allow
    when: { destination: { lists: [archives] } }
${THRESHOLD_RULE}`;
    const { engine, events } = engineWith(rules);
    const allowed = open(engine, '192.0.2.40', T0);
    send(allowed, 80 * MB, T0 + MINUTE);
    const other = open(engine, '203.0.113.8', T0);
    send(other, 80 * MB, T0 + MINUTE);
    engine.finish(T0 + 2 * MINUTE);

    const alerted = events()
      .filter((event) => event.event.kind === 'alert')
      .map((event) => event.tollgate.remote.ip);
    expect(alerted).toEqual(['203.0.113.8']);
  });

  it('counts ingress and internal bytes apart from egress', () => {
    const { engine, events } = engineWith(THRESHOLD_RULE);
    const flow = open(engine, '203.0.113.9', T0);
    flow.data(1, Buffer.alloc(1000), T0);
    flow.data(0, Buffer.alloc(10), T0);
    const internal = engine.openFlow({
      initiator: { ip: '10.1.1.1', port: 1 },
      responder: { ip: '10.2.2.2', port: 2 },
      ts: T0,
    });
    internal.data(0, Buffer.alloc(500), T0);
    engine.finish(T0 + 1);

    expect(engine.stats.bytes.egress).toBe(10);
    expect(engine.stats.bytes.ingress).toBe(1000);
    expect(engine.stats.bytes.internal).toBe(500);
    const flows = events().filter((event) => event.event.action === 'network-flow');
    expect(flows).toHaveLength(1);
    expect(flows[0]!.tollgate.egress.bytes).toBe(10);
    expect(flows[0]!.network.direction).toBe('outbound');
  });
});

function clientHello(serverName: string): Buffer {
  const name = Buffer.from(serverName);
  const sni = Buffer.concat([
    Buffer.from([0x00, 0x00]),
    u16(name.length + 5),
    u16(name.length + 3),
    Buffer.from([0x00]),
    u16(name.length),
    name,
  ]);
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]),
    Buffer.alloc(32, 1),
    Buffer.from([0x00]),
    u16(2),
    Buffer.from([0x13, 0x01]),
    Buffer.from([0x01, 0x00]),
    u16(sni.length),
    sni,
  ]);
  const handshake = Buffer.concat([Buffer.from([0x01, 0x00]), u16(body.length), body]);
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), u16(handshake.length), handshake]);
}

function u16(value: number): Buffer {
  const buffer = Buffer.alloc(2);
  buffer.writeUInt16BE(value);
  return buffer;
}

describe('Engine destination rules', () => {
  const CLOUD_RULE = `  - id: cloud
    name: cloud storage
    kind: cloud-storage
    action: block
    destinations: { lists: [clouds] }
`;

  it('names the remote from the SNI and raises cloud-storage-transfer in span mode', () => {
    const { engine, events } = engineWith(CLOUD_RULE);
    const flow = open(engine, '203.0.113.10', T0);
    flow.data(0, clientHello('bucket.s3.amazonaws.com'), T0);
    engine.finish(T0 + 1);

    const alert = events().find((event) => event.event.action === 'cloud-storage-transfer');
    expect(alert?.tollgate.remote.domain).toBe('bucket.s3.amazonaws.com');
    expect(alert?.tollgate.verdict).toBe('would-block');
    const hello = events().find((event) => event.event.action === 'tls-client-hello');
    expect(hello?.tls.client.server_name).toBe('bucket.s3.amazonaws.com');
  });

  it('blocks in inline mode and tells the front-end', () => {
    const { engine } = engineWith(CLOUD_RULE, 'inline');
    const flow = open(engine, '203.0.113.11', T0);
    const verdicts: Verdict[] = [];
    flow.onBlock((verdict) => verdicts.push(verdict));
    flow.data(0, clientHello('x.amazonaws.com'), T0);
    expect(verdicts.map((verdict) => verdict.ruleId)).toEqual(['cloud']);
  });

  it('raises destination-not-allowed for a remote outside the allow-list', () => {
    const rules = `  - id: allow-list
    name: only archives
    kind: destination-not-allowed
    action: alert
    allowed: { lists: [archives] }
`;
    const { engine, events } = engineWith(rules);
    send(open(engine, '192.0.2.9', T0), 10, T0);
    send(open(engine, '203.0.113.12', T0), 10, T0);
    engine.finish(T0 + 1);
    const alerted = events()
      .filter((event) => event.event.action === 'destination-not-allowed')
      .map((event) => event.tollgate.remote.ip);
    expect(alerted).toEqual(['203.0.113.12']);
  });
});

describe('Engine alert fields', () => {
  it('puts the verdict and the meter on threshold alerts', () => {
    const { engine, events } = engineWith(THRESHOLD_RULE);
    send(open(engine, '203.0.113.13', T0), 60 * MB, T0 + MINUTE);
    engine.finish(T0 + 2 * MINUTE);
    const [alert] = events().filter((event) => event.event.action === 'egress-threshold-exceeded');
    expect(alert!.tollgate.verdict).toBe('alert');
    expect(alert!.tollgate.dry_run).toBe(false);
    expect(alert!.tollgate.meter.measure).toBe('bytes');
    expect(alert!.tollgate.meter.limit).toBe(50 * MB);
    expect(alert!.rule.ruleset).toBe('test');
  });
});

describe('Engine inline refusals', () => {
  const BLOCK_RULE = `  - id: block-egress
    name: block over 50 MB
    kind: egress-threshold
    action: block
    threshold: 50MB
    per: remote
    window: both
`;

  function facts(remoteIp: string, ts: number) {
    return { remoteIp, remotePort: 443, sourceIp: '10.1.1.1', protocol: 'unknown', ts };
  }

  it('refuses new connections to a remote over a block threshold', () => {
    const { engine } = engineWith(BLOCK_RULE, 'inline');
    const flow = open(engine, '203.0.113.20', T0);
    const verdicts: Verdict[] = [];
    flow.onBlock((verdict) => verdicts.push(verdict));
    send(flow, 60 * MB, T0 + MINUTE);
    expect(verdicts.map((verdict) => verdict.eventAction)).toEqual(['egress-threshold-exceeded']);

    expect(engine.destinationRefusal(facts('203.0.113.20', T0 + 2 * MINUTE))?.ruleId).toBe(
      'block-egress',
    );
    expect(engine.destinationRefusal(facts('203.0.113.21', T0 + 2 * MINUTE))).toBeNull();
    expect(engine.destinationRefusal(facts('203.0.113.20', T0 + 130 * MINUTE))).toBeNull();
  });
});

describe('Engine event fields', () => {
  it('splits DOMAIN\\user into ECS user fields', () => {
    const { engine, events } = engineWith(THRESHOLD_RULE);
    const flow = open(engine, '203.0.113.30', T0) as EngineFlow;
    flow.observe(
      { kind: 'smb-user', sessionId: '1', user: 'alice', domain: 'CORP', workstation: 'W' },
      T0,
    );
    flow.data(0, Buffer.alloc(10), T0);
    engine.finish(T0 + 1);
    const [record] = events().filter((event) => event.event.action === 'network-flow');
    expect(record!.user).toEqual({ name: 'alice', domain: 'CORP' });
  });

  it('ignores an address written as the HTTP Host', () => {
    const { engine, events } = engineWith(THRESHOLD_RULE);
    const flow = open(engine, '203.0.113.31', T0, 80);
    flow.data(0, Buffer.from('GET /a HTTP/1.1\r\nHost: 203.0.113.31:80\r\n\r\n'), T0);
    flow.data(1, Buffer.from('HTTP/1.1 204 No Content\r\n\r\n'), T0);
    engine.finish(T0 + 1);
    const [request] = events().filter((event) => event.event.action === 'http-request');
    expect(request!.tollgate.remote.domain).toBeUndefined();
    expect(request!.url.domain).toBe('203.0.113.31');
  });

  it('pseudonymizes URL paths and keeps the extension', () => {
    const { engine, events } = engineWith(THRESHOLD_RULE);
    const flow = open(engine, '203.0.113.32', T0, 80);
    const head = 'PUT /bucket/DOE_JANE_discharge.pdf?x=1 HTTP/1.1\r\nHost: bucket.example:8080\r\n';
    flow.data(0, Buffer.from(`${head}Content-Length: 0\r\n\r\n`), T0);
    flow.data(1, Buffer.from('HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n'), T0);
    engine.finish(T0 + 1);
    const [request] = events().filter((event) => event.event.action === 'http-request');
    expect(JSON.stringify(request)).not.toContain('DOE_JANE');
    expect(request!.url.path).toMatch(/^hmac-sha256:/);
    expect(request!.url.extension).toBe('pdf');
    expect(request!.url.domain).toBe('bucket.example');
  });

  it('raises a User-Agent alert before the upload body passes', () => {
    const rules = `  - id: rclone
    name: rclone upload
    kind: cloud-storage
    action: block
    user_agents: [rclone/]
`;
    const { engine } = engineWith(rules, 'inline');
    const flow = open(engine, '203.0.113.33', T0, 80);
    const verdicts: Verdict[] = [];
    flow.onBlock((verdict) => verdicts.push(verdict));
    const head = 'PUT /b/x HTTP/1.1\r\nHost: b.example\r\nUser-Agent: rclone/v1.60\r\n';
    flow.data(0, Buffer.from(`${head}Content-Length: 100000000\r\n\r\n`), T0);
    expect(verdicts.map((verdict) => verdict.ruleId)).toEqual(['rclone']);
  });
});

describe('Engine protocol detection', () => {
  it('flags unrecognized content on a service port', () => {
    const { engine } = engineWith(THRESHOLD_RULE);
    const flow = open(engine, '203.0.113.40', T0, 104);
    flow.data(0, Buffer.from('this is not DICOM at all, just text\r\n'), T0);
    engine.finish(T0 + 1);
    expect(engine.stats.anomalies.get('dispatch.unrecognized_content')).toBe(1);
  });

  it('does not judge a flow picked up mid-stream', () => {
    const { engine } = engineWith(THRESHOLD_RULE);
    const flow = engine.openFlow({
      initiator: { ip: '10.1.1.1', port: 40000 },
      responder: { ip: '203.0.113.41', port: 443 },
      ts: T0,
      midStream: true,
    });
    flow.data(0, Buffer.from([0x17, 0x03, 0x03, 0x00, 0x20, ...Buffer.alloc(32, 7)]), T0);
    engine.finish(T0 + 1);
    expect(engine.stats.anomalies.has('dispatch.unrecognized_content')).toBe(false);
    expect((flow as FlowHandle & { protocol: string }).protocol).toBe('tls');
  });
});
