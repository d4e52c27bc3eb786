import { describe, expect, it } from 'vitest';
import type { DecodedPacket } from '../../../src/capture/decode.js';
import { Engine } from '../../../src/engine/engine.js';
import { TcpTracker } from '../../../src/engine/tcp-tracker.js';
import { Pseudonymizer } from '../../../src/events/pseudonymize.js';
import { MemorySink } from '../../../src/events/sink.js';
import { CidrSet } from '../../../src/policy/cidr.js';
import { loadPolicyText } from '../../../src/policy/load.js';
import { PROTOCOLS } from '../../../src/protocols/registry.js';

const SYN = 0x02;
const ACK = 0x10;
const PSH = 0x08;
const FIN = 0x01;
const RST = 0x04;
const INSIDE = (10 << 24) | 1;
const REMOTE = ((203 << 24) | (113 << 8) | 5) >>> 0;
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

type Event = Record<string, any>;

function setup(limits: { maxFlows?: number; idleTimeoutMs?: number; maxMeterKeys?: number } = {}) {
  const sink = new MemorySink();
  const engine = new Engine({
    policy: loadPolicyText('version: 1\nrules: []\n', 'empty.yaml', '/tmp'),
    protectedNetworks: CidrSet.parse(['10.0.0.0/8']),
    sink,
    pseudonymizer: new Pseudonymizer(Buffer.alloc(32, 1), false),
    mode: 'span',
    protocols: PROTOCOLS,
    observer: { hostname: 'test', version: '0' },
    limits: { maxMeterKeys: limits.maxMeterKeys ?? 1000 },
  });
  const tracker = new TcpTracker(engine, {
    maxFlows: limits.maxFlows ?? 1000,
    idleTimeoutMs: limits.idleTimeoutMs ?? 300_000,
    reassembly: { maxPendingBytes: 1 << 20, maxPendingSegments: 512 },
  });
  return { engine, tracker, events: () => sink.events as Event[] };
}

function packet(fields: Partial<DecodedPacket> & { payload?: Buffer }): DecodedPacket {
  const payload = fields.payload ?? Buffer.alloc(0);
  return {
    ts: T0,
    ipVersion: 4,
    src4: INSIDE,
    dst4: REMOTE,
    src6: '',
    dst6: '',
    protocol: 6,
    srcPort: 40000,
    dstPort: 9000,
    seq: 0,
    ack: 0,
    tcpFlags: ACK,
    data: payload,
    payloadOffset: 0,
    payloadLength: payload.length,
    payloadTruncated: 0,
    vlan: -1,
    ...fields,
  };
}

/** A handshake and `bytes` of payload from the inside client on port `port`. */
function connection(
  tracker: TcpTracker,
  port: number,
  bytes: number,
  ts: number,
  remote = REMOTE,
): void {
  tracker.packet(packet({ ts, srcPort: port, dst4: remote, seq: 99, tcpFlags: SYN }));
  tracker.packet(
    packet({
      ts,
      src4: remote,
      dst4: INSIDE,
      srcPort: 9000,
      dstPort: port,
      seq: 499,
      ack: 100,
      tcpFlags: SYN | ACK,
    }),
  );
  tracker.packet(
    packet({
      ts,
      srcPort: port,
      dst4: remote,
      seq: 100,
      ack: 500,
      tcpFlags: PSH | ACK,
      payload: Buffer.alloc(bytes, 0x41),
    }),
  );
}

describe('TcpTracker', () => {
  it('orients a connection by its SYN and meters inside payload', () => {
    const { tracker, engine, events } = setup();
    connection(tracker, 40001, 1000, T0);
    tracker.packet(packet({ srcPort: 40001, seq: 1100, ack: 500, tcpFlags: FIN | ACK }));
    tracker.packet(
      packet({
        src4: REMOTE,
        dst4: INSIDE,
        srcPort: 9000,
        dstPort: 40001,
        seq: 500,
        ack: 1101,
        tcpFlags: FIN | ACK,
      }),
    );
    engine.finish(T0);

    const [flow] = events().filter((event) => event.event.action === 'network-flow');
    expect(flow!.source.ip).toBe('10.0.0.1');
    expect(flow!.tollgate.egress.bytes).toBe(1000);
    expect(flow!.tollgate.flow.end_reason).toBe('fin');
    expect(flow!.tollgate.egress.estimated_missing_bytes).toBe(0);
  });

  it('evicts the least recently used connection when full', () => {
    const { tracker, engine, events } = setup({ maxFlows: 2 });
    connection(tracker, 40001, 10, T0);
    connection(tracker, 40002, 10, T0 + 1);
    connection(tracker, 40003, 10, T0 + 2);
    expect(tracker.counters.evictedConnections).toBe(1);
    expect(tracker.size).toBe(2);

    tracker.finish(T0 + 3);
    engine.finish(T0 + 3);
    const reasons = events()
      .filter((event) => event.event.action === 'network-flow')
      .map((event) => [event.source.port, event.tollgate.flow.end_reason]);
    expect(reasons).toContainEqual([40001, 'evicted']);
  });

  it('ends idle connections by packet time', () => {
    const { tracker } = setup({ idleTimeoutMs: 60_000 });
    connection(tracker, 40001, 10, T0);
    connection(tracker, 40002, 10, T0 + 120_000);
    expect(tracker.counters.idleTimeouts).toBe(1);
    expect(tracker.size).toBe(1);
  });

  it('picks up a connection mid-stream by its service port', () => {
    const { tracker, engine, events } = setup();
    tracker.packet(
      packet({
        src4: REMOTE,
        dst4: INSIDE,
        srcPort: 50000,
        dstPort: 445,
        seq: 7,
        tcpFlags: ACK | PSH,
        payload: Buffer.alloc(40),
      }),
    );
    tracker.packet(
      packet({
        src4: INSIDE,
        dst4: REMOTE,
        srcPort: 445,
        dstPort: 50000,
        seq: 900,
        tcpFlags: ACK | PSH,
        payload: Buffer.alloc(300),
      }),
    );
    tracker.finish(T0);
    engine.finish(T0);
    const [flow] = events().filter((event) => event.event.action === 'network-flow');
    expect(flow!.destination.port).toBe(445);
    expect(flow!.network.direction).toBe('inbound');
    expect(flow!.tollgate.flow.mid_stream).toBe(true);
    expect(flow!.tollgate.egress.bytes).toBe(300);
    expect(tracker.counters.midStreamConnections).toBe(1);
  });

  it('reports bytes lost before a FIN as missing, not egress', () => {
    const { tracker, engine, events } = setup();
    connection(tracker, 40001, 100, T0);
    tracker.packet(
      packet({
        srcPort: 40001,
        seq: 1200,
        ack: 500,
        tcpFlags: PSH | ACK,
        payload: Buffer.alloc(100),
      }),
    );
    tracker.packet(packet({ srcPort: 40001, seq: 1300, ack: 500, tcpFlags: RST }));
    engine.finish(T0);
    const [flow] = events().filter((event) => event.event.action === 'network-flow');
    expect(flow!.tollgate.egress.bytes).toBe(200);
    expect(flow!.tollgate.egress.estimated_missing_bytes).toBe(1000);
  });

  it('evicts meter keys when the store is full and reports their hour', () => {
    const { tracker, engine, events } = setup({ maxMeterKeys: 2 });
    connection(tracker, 40001, 10, T0, REMOTE);
    connection(tracker, 40002, 20, T0 + 1, REMOTE + 1);
    connection(tracker, 40003, 30, T0 + 2, REMOTE + 2);
    tracker.finish(T0 + 3);
    engine.finish(T0 + 3);
    expect(engine.meterEvictions).toBeGreaterThan(0);
    const meters = events().filter((event) => event.event.action === 'egress-meter');
    expect(meters.map((event) => event.tollgate.egress.bytes).sort()).toEqual([10, 20, 30]);
    expect(meters.filter((event) => event.tollgate.meter.evicted)).toHaveLength(1);
  });
});
