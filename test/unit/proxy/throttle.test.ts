import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Engine, type EngineOptions } from '../../../src/engine/engine.js';
import type { Verdict } from '../../../src/engine/front-end.js';
import { Pseudonymizer } from '../../../src/events/pseudonymize.js';
import { MemorySink } from '../../../src/events/sink.js';
import { CidrSet } from '../../../src/policy/cidr.js';
import { loadPolicyText } from '../../../src/policy/load.js';
import { PROTOCOLS } from '../../../src/protocols/registry.js';
import { EgressThrottle, RateLimiter, RateLimiterRegistry } from '../../../src/proxy/throttle.js';

const T0 = Date.UTC(2026, 10, 3, 10, 0, 0);

function throttleVerdict(ruleId: string, rate: number): Verdict {
  return {
    action: 'throttle',
    ruleId,
    ruleName: ruleId,
    eventAction: 'egress-threshold-exceeded',
    dryRun: false,
    rateBytesPerSecond: rate,
  };
}

describe('RateLimiter', () => {
  it('schedules each reservation after the previous one', () => {
    const limiter = new RateLimiter(1000);
    expect(limiter.reserve(500, 0)).toBe(500);
    expect(limiter.reserve(500, 0)).toBe(1000);
    expect(limiter.reserve(1000, 400)).toBe(1600);
  });

  it('does not save up idle time', () => {
    const limiter = new RateLimiter(1000);
    limiter.reserve(100, 0);
    expect(limiter.reserve(100, 10_000)).toBe(100);
  });
});

describe('RateLimiterRegistry', () => {
  it('shares a limiter per rule and remote', () => {
    const registry = new RateLimiterRegistry();
    const a = registry.acquire('r', '192.0.2.1', 1000);
    const b = registry.acquire('r', '192.0.2.1', 1000);
    const c = registry.acquire('r', '192.0.2.2', 1000);
    expect(a).toBe(b);
    expect(a).not.toBe(c);
    registry.release('r', '192.0.2.1', a);
    expect(registry.size).toBe(2);
    registry.release('r', '192.0.2.1', b);
    registry.release('r', '192.0.2.2', c);
    expect(registry.size).toBe(0);
  });
});

describe('EgressThrottle', () => {
  let now = 0;
  beforeEach(() => {
    vi.useFakeTimers();
    now = 0;
  });
  afterEach(() => vi.useRealTimers());

  function make() {
    const registry = new RateLimiterRegistry();
    const calls: string[] = [];
    const throttle = new EgressThrottle({
      registry,
      remoteIp: '192.0.2.1',
      now: () => now,
      pauseSource: () => calls.push('pause'),
      resumeSource: () => calls.push('resume'),
    });
    const advance = (ms: number) => {
      now += ms;
      vi.advanceTimersByTime(ms);
    };
    return { registry, throttle, calls, advance };
  }

  it('sends at once without a verdict', () => {
    const { throttle, calls } = make();
    throttle.push(10_000, () => calls.push('a'));
    expect(calls).toEqual(['a']);
  });

  it('is idle only without verdict and waiting chunk', () => {
    const { throttle, advance } = make();
    expect(throttle.idle).toBe(true);
    throttle.add(throttleVerdict('slow', 1000));
    // The splice forwards directly while idle, so a verdict alone must end idleness.
    expect(throttle.idle).toBe(false);
    throttle.push(500, () => {});
    expect(throttle.holding).toBe(true);
    advance(500);
    expect(throttle.holding).toBe(false);
    expect(throttle.idle).toBe(false);
    throttle.dispose();
    expect(throttle.idle).toBe(true);
  });

  it('delays chunks to the verdict rate', () => {
    const { throttle, calls, advance } = make();
    throttle.add(throttleVerdict('slow', 1000));
    throttle.push(500, () => calls.push('a'));
    throttle.push(500, () => calls.push('b'));
    expect(calls).toEqual(['pause']);
    expect(throttle.holding).toBe(true);
    advance(499);
    expect(calls).toEqual(['pause']);
    advance(1);
    expect(calls).toEqual(['pause', 'a']);
    advance(500);
    expect(calls).toEqual(['pause', 'a', 'b', 'resume']);
    expect(throttle.holding).toBe(false);
  });

  it('follows the slowest of two verdicts', () => {
    const { throttle, calls, advance } = make();
    throttle.add(throttleVerdict('fast', 10_000));
    throttle.add(throttleVerdict('slow', 1000));
    throttle.push(1000, () => calls.push('a'));
    advance(999);
    expect(calls).toEqual(['pause']);
    advance(1);
    expect(calls).toEqual(['pause', 'a', 'resume']);
  });

  it('shares the rate between flows to one remote', () => {
    const first = make();
    const second = new EgressThrottle({
      registry: first.registry,
      remoteIp: '192.0.2.1',
      now: () => now,
      pauseSource: () => {},
      resumeSource: () => {},
    });
    first.throttle.add(throttleVerdict('slow', 1000));
    second.add(throttleVerdict('slow', 1000));
    const sent: string[] = [];
    first.throttle.push(1000, () => sent.push('first'));
    second.push(1000, () => sent.push('second'));
    first.advance(1000);
    expect(sent).toEqual(['first']);
    first.advance(1000);
    expect(sent).toEqual(['first', 'second']);
  });

  it('drops waiting chunks when disposed', () => {
    const { registry, throttle, calls, advance } = make();
    throttle.add(throttleVerdict('slow', 1000));
    throttle.push(1000, () => calls.push('a'));
    throttle.dispose();
    advance(5000);
    expect(calls).toEqual(['pause']);
    expect(registry.size).toBe(0);
  });

  it('ignores a verdict without a rate', () => {
    const { throttle, calls } = make();
    throttle.add({ ...throttleVerdict('none', 1), rateBytesPerSecond: undefined } as Verdict);
    throttle.push(1000, () => calls.push('a'));
    expect(calls).toEqual(['a']);
  });
});

describe('Engine throttle verdicts', () => {
  const RULES = `version: 1
rules:
  - { id: slow, name: Slow down, kind: egress-threshold, action: throttle, rate: 1MB, threshold: 1000, per: remote, window: hour }
  - { id: slow-dry, name: Slow down later, kind: egress-threshold, action: throttle, rate: 1MB, threshold: 1000, dry_run: true, per: remote, window: hour, when: { destination: { cidrs: [198.51.100.0/24] } } }
`;

  function run(mode: EngineOptions['mode'], remoteIp: string) {
    const sink = new MemorySink();
    const engine = new Engine({
      policy: loadPolicyText(RULES, 'test.yaml', '/tmp'),
      protectedNetworks: CidrSet.parse(['10.0.0.0/8']),
      sink,
      pseudonymizer: new Pseudonymizer(Buffer.alloc(32, 7), false),
      mode,
      protocols: PROTOCOLS,
      observer: { hostname: 'test', version: '0' },
      limits: { meterFlushBytes: 1 },
    });
    const flow = engine.openFlow({
      initiator: { ip: '10.1.1.1', port: 40000 },
      responder: { ip: remoteIp, port: 80 },
      ts: T0,
    });
    const throttles: Verdict[] = [];
    flow.onThrottle((verdict) => throttles.push(verdict));
    flow.data(0, Buffer.alloc(600, 0x41), T0);
    const early = throttles.length;
    flow.data(0, Buffer.alloc(600, 0x41), T0 + 1);
    flow.data(0, Buffer.alloc(600, 0x41), T0 + 2);
    flow.end(T0 + 3, 'fin');
    engine.finish(T0 + 4);
    const alerts = (sink.events as Array<Record<string, any>>).filter(
      (event) => event.event.action === 'egress-threshold-exceeded',
    );
    return { early, throttles, alerts };
  }

  it('throttles inline once the threshold is crossed', () => {
    const { early, throttles, alerts } = run('inline', '203.0.113.5');
    expect(early).toBe(0);
    expect(throttles).toHaveLength(1);
    expect(throttles[0]!.ruleId).toBe('slow');
    expect(throttles[0]!.rateBytesPerSecond).toBe(1_000_000);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.tollgate.verdict).toBe('throttle');
  });

  it('reports would-throttle in span mode', () => {
    const { throttles, alerts } = run('span', '203.0.113.5');
    expect(throttles).toHaveLength(0);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.tollgate.verdict).toBe('would-throttle');
  });

  it('reports would-throttle for a dry-run rule', () => {
    const { throttles, alerts } = run('inline', '198.51.100.7');
    expect(throttles.map((verdict) => verdict.ruleId)).toEqual(['slow']);
    const dry = alerts.find((alert) => alert.rule.id === 'slow-dry');
    expect(dry?.tollgate.verdict).toBe('would-throttle');
    expect(dry?.tollgate.dry_run).toBe(true);
  });
});
