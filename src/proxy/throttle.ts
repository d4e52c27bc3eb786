// Bandwidth caps for throttle verdicts. A cap belongs to one rule and one remote address and
// is shared by every flow to that remote, so ten parallel uploads together get the rule's rate.
// A throttled flow's egress chunks are delayed until the cap allows them: the source socket is
// paused meanwhile, so backpressure reaches the client and at most one read waits in memory.

import type { Verdict } from '../engine/front-end.js';
import type { Millis } from '../engine/types.js';

/**
 * A cap of `bytesPerSecond` as a schedule: each reservation of n bytes ends n / rate seconds
 * after the previous one (or after now, when the cap was idle). Idle time is not saved up, so
 * the bytes released in any interval of t seconds after throttling began never exceed rate * t.
 */
export class RateLimiter {
  /** Flows that use this limiter. */
  users = 0;
  private nextFree: Millis = 0;

  constructor(readonly bytesPerSecond: number) {}

  /** Reserves `bytes` and returns the milliseconds to wait before forwarding them. */
  reserve(bytes: number, now: Millis): number {
    const start = Math.max(now, this.nextFree);
    this.nextFree = start + (bytes * 1000) / this.bytesPerSecond;
    return this.nextFree - now;
  }
}

/** The limiters in use, by rule and remote address; a limiter is dropped with its last flow. */
export class RateLimiterRegistry {
  private readonly limiters = new Map<string, RateLimiter>();

  get size(): number {
    return this.limiters.size;
  }

  acquire(ruleId: string, remoteIp: string, bytesPerSecond: number): RateLimiter {
    const key = `${ruleId}|${remoteIp}|${bytesPerSecond}`;
    let limiter = this.limiters.get(key);
    if (limiter === undefined) {
      limiter = new RateLimiter(bytesPerSecond);
      this.limiters.set(key, limiter);
    }
    limiter.users++;
    return limiter;
  }

  release(ruleId: string, remoteIp: string, limiter: RateLimiter): void {
    limiter.users--;
    if (limiter.users > 0) return;
    const key = `${ruleId}|${remoteIp}|${limiter.bytesPerSecond}`;
    if (this.limiters.get(key) === limiter) this.limiters.delete(key);
  }
}

export interface EgressThrottleOptions {
  registry: RateLimiterRegistry;
  remoteIp: string;
  now(): Millis;
  /** Stops reading from the sender while chunks wait. */
  pauseSource(): void;
  /** Called when the last waiting chunk was sent; the caller resumes unless the sink is full. */
  resumeSource(): void;
}

/** Smallest delay worth a timer; shorter waits are carried by the schedule to a later chunk. */
const MIN_DELAY_MS = 1;

/**
 * The egress side of one flow: sends chunks now while no throttle verdict applies, and on time
 * once one does. With several throttle verdicts the slowest schedule decides.
 */
export class EgressThrottle {
  private readonly limiters: Array<{ ruleId: string; limiter: RateLimiter }> = [];
  private readonly waiting: Array<{ due: Millis; send: () => void }> = [];
  private timer: NodeJS.Timeout | null = null;
  private disposed = false;

  constructor(private readonly options: EgressThrottleOptions) {}

  /** True while chunks wait for the schedule (the source is paused). */
  get holding(): boolean {
    return this.waiting.length > 0;
  }

  get active(): boolean {
    return this.limiters.length > 0;
  }

  /** True when push() would send at once: no throttle verdict applies and nothing waits. */
  get idle(): boolean {
    return this.limiters.length === 0 && this.waiting.length === 0;
  }

  /** Applies a throttle verdict from the engine; verdicts without a rate are ignored. */
  add(verdict: Verdict): void {
    const rate = verdict.rateBytesPerSecond;
    if (this.disposed || rate === undefined || rate <= 0) return;
    if (this.limiters.some((entry) => entry.ruleId === verdict.ruleId)) return;
    const limiter = this.options.registry.acquire(verdict.ruleId, this.options.remoteIp, rate);
    this.limiters.push({ ruleId: verdict.ruleId, limiter });
  }

  /** Runs `send` for `bytes` egress bytes now, or queues it until the caps allow it. */
  push(bytes: number, send: () => void): void {
    if (this.disposed) return;
    if (this.idle) {
      send();
      return;
    }
    const now = this.options.now();
    let wait = 0;
    for (const { limiter } of this.limiters) wait = Math.max(wait, limiter.reserve(bytes, now));
    if (wait < MIN_DELAY_MS && this.waiting.length === 0) {
      send();
      return;
    }
    this.waiting.push({ due: now + wait, send });
    if (this.waiting.length === 1) {
      this.options.pauseSource();
      this.schedule();
    }
  }

  /** Drops waiting chunks and returns the limiters; used when the flow ends or is cut. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.waiting.length = 0;
    for (const { ruleId, limiter } of this.limiters)
      this.options.registry.release(ruleId, this.options.remoteIp, limiter);
    this.limiters.length = 0;
  }

  private schedule(): void {
    const head = this.waiting[0];
    if (head === undefined) return;
    const delay = Math.max(0, head.due - this.options.now());
    this.timer = setTimeout(() => this.release(), Math.ceil(delay));
  }

  private release(): void {
    this.timer = null;
    if (this.disposed) return;
    const now = this.options.now();
    while (this.waiting.length > 0 && this.waiting[0]!.due <= now) {
      this.waiting.shift()!.send();
      if (this.disposed) return;
    }
    if (this.waiting.length > 0) this.schedule();
    else this.options.resumeSource();
  }
}
