import { describe, expect, it } from 'vitest';
import { Engine } from '../../../src/engine/engine.js';
import type { FlowHandle } from '../../../src/engine/front-end.js';
import { Pseudonymizer } from '../../../src/events/pseudonymize.js';
import { MemorySink } from '../../../src/events/sink.js';
import { CidrSet } from '../../../src/policy/cidr.js';
import { loadDefaultPolicy } from '../../../src/policy/load.js';
import { PROTOCOLS } from '../../../src/protocols/registry.js';

const T0 = Date.UTC(2026, 10, 3, 10, 20, 0);
const MINUTE = 60_000;

function newEngine(maxMeterKeys?: number): Engine {
  return new Engine({
    policy: loadDefaultPolicy(),
    protectedNetworks: CidrSet.parse(['10.0.0.0/8']),
    sink: new MemorySink(),
    pseudonymizer: new Pseudonymizer(Buffer.alloc(32, 7), false),
    mode: 'inline',
    protocols: PROTOCOLS,
    observer: { hostname: 'test', version: '0' },
    limits: { meterFlushBytes: 1, ...(maxMeterKeys === undefined ? {} : { maxMeterKeys }) },
  });
}

/** Opens a flow from an inside client to `remoteIp` and sends `bytes` from the client at `ts`. */
function upload(engine: Engine, sourceIp: string, remoteIp: string, bytes: number, ts: number) {
  const flow: FlowHandle = engine.openFlow({
    initiator: { ip: sourceIp, port: 40000 },
    responder: { ip: remoteIp, port: 9999 },
    ts,
  });
  flow.data(0, Buffer.alloc(bytes, 0x5a), ts);
  return flow;
}

describe('Engine.topMeters', () => {
  it('orders remotes by rolling egress bytes', () => {
    const engine = newEngine();
    upload(engine, '10.0.0.5', '198.51.100.1', 1000, T0);
    upload(engine, '10.0.0.5', '198.51.100.2', 3000, T0);
    upload(engine, '10.0.0.6', '198.51.100.3', 2000, T0);
    upload(engine, '10.0.0.6', '198.51.100.1', 500, T0 + MINUTE);

    const { total, top } = engine.topMeters('remote', 2, T0 + 2 * MINUTE);
    expect(total).toBe(3);
    expect(top.map((entry) => entry.key)).toEqual(['198.51.100.2', '198.51.100.3']);
    expect(top[0]!.rolling).toEqual({ bytes: 3000, instances: 0, files: 0 });
    expect(top[0]!.hour).toEqual({
      start: Date.UTC(2026, 10, 3, 10),
      bytes: 3000,
      instances: 0,
      files: 0,
    });
    expect(top[0]!.labels.remoteIp).toBe('198.51.100.2');

    const all = engine.topMeters('remote', 10, T0 + 2 * MINUTE).top;
    expect(all.map((entry) => [entry.key, entry.rolling.bytes])).toEqual([
      ['198.51.100.2', 3000],
      ['198.51.100.3', 2000],
      ['198.51.100.1', 1500],
    ]);
  });

  it('keys source-remote meters by both addresses', () => {
    const engine = newEngine();
    upload(engine, '10.0.0.5', '198.51.100.1', 1000, T0);
    upload(engine, '10.0.0.6', '198.51.100.1', 700, T0);
    const { total, top } = engine.topMeters('source-remote', 10, T0);
    expect(total).toBe(2);
    expect(top.map((entry) => [entry.key, entry.rolling.bytes])).toEqual([
      ['10.0.0.5>198.51.100.1', 1000],
      ['10.0.0.6>198.51.100.1', 700],
    ]);
    expect(engine.topMeters('user', 10, T0)).toEqual({ total: 0, top: [] });
  });

  it('drops minutes older than 60 from the rolling window', () => {
    const engine = newEngine();
    upload(engine, '10.0.0.5', '198.51.100.1', 1000, T0);
    upload(engine, '10.0.0.5', '198.51.100.1', 400, T0 + 30 * MINUTE);

    const later = engine.topMeters('remote', 1, T0 + 61 * MINUTE).top[0]!;
    expect(later.rolling.bytes).toBe(400);
    // 11:21 is in the next UTC hour, so the 10:00 bucket is no longer the current hour.
    expect(later.hour.start).toBe(Date.UTC(2026, 10, 3, 11));
    expect(later.hour.bytes).toBe(0);

    const muchLater = engine.topMeters('remote', 1, T0 + 200 * MINUTE).top[0]!;
    expect(muchLater.rolling.bytes).toBe(0);
  });

  it('reports only the entries a full store kept', () => {
    const engine = newEngine(2);
    upload(engine, '10.0.0.5', '198.51.100.1', 100, T0);
    upload(engine, '10.0.0.5', '198.51.100.2', 200, T0);
    upload(engine, '10.0.0.5', '198.51.100.3', 300, T0);
    const { total, top } = engine.topMeters('remote', 10, T0);
    expect(total).toBe(2);
    expect(top.map((entry) => entry.key)).toEqual(['198.51.100.3', '198.51.100.2']);
    expect(engine.meterEvictions).toBeGreaterThanOrEqual(1);
  });

  it('counts open flows', () => {
    const engine = newEngine();
    const first = upload(engine, '10.0.0.5', '198.51.100.1', 1, T0);
    upload(engine, '10.0.0.5', '198.51.100.2', 1, T0);
    expect(engine.openFlowCount).toBe(2);
    first.end(T0 + 1, 'fin');
    expect(engine.openFlowCount).toBe(1);
  });
});
