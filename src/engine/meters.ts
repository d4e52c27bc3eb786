// The engine's meters: egress bytes, DICOM instances and files per remote, per (source, remote)
// pair and per user, plus one store per threshold rule so each rule counts only the flows its
// conditions select.

import {
  type HourClosedListener,
  type MeterEntry,
  type MeterLabels,
  MeterStore,
} from '../meter/store.js';
import type { CompiledRule } from '../policy/model.js';
import type { Millis } from './types.js';

export interface MeterLimits {
  /** Keys kept per store before the least recently used one is evicted. */
  maxKeys: number;
}

export const DEFAULT_METER_LIMITS: MeterLimits = { maxKeys: 100_000 };

/** A meter rule's crossing: the window that crossed, its value and the rule's limit. */
export interface MeterCrossing {
  rule: CompiledRule;
  entry: MeterEntry;
  window: 'hour' | 'rolling';
  value: number;
  limit: number;
}

interface AlertState {
  alertedHour: Millis;
  rollingArmed: boolean;
}

export class RuleMeter {
  readonly store: MeterStore;
  private readonly alertStates = new WeakMap<MeterEntry, AlertState>();

  constructor(
    readonly rule: CompiledRule,
    maxKeys: number,
  ) {
    this.store = new MeterStore(rule.per ?? 'remote', maxKeys, () => {});
  }

  /**
   * Checks the entry against the rule's limit after counts were added. Returns a crossing when
   * an alert is due: once per UTC hour bucket, and once each time the rolling window rises
   * above the limit. `over` says whether the limit is exceeded now, for block rules.
   */
  check(entry: MeterEntry): { crossing: MeterCrossing | null; over: boolean } {
    const rule = this.rule;
    const counting = rule.kind === 'bulk-dicom' ? 'instances' : 'bytes';
    const limit = (counting === 'bytes' ? rule.thresholdBytes : rule.instances) ?? Infinity;
    const window = entry.window;
    const hourValue = counting === 'bytes' ? window.hour.bytes : window.hour.instances;
    const rollingValue = counting === 'bytes' ? window.rollingBytes : window.rollingInstances;
    const useHour = rule.window !== 'rolling';
    const useRolling = rule.window !== 'hour';

    let state = this.alertStates.get(entry);
    if (state === undefined) {
      state = { alertedHour: -1, rollingArmed: true };
      this.alertStates.set(entry, state);
    }
    if (rollingValue <= limit) state.rollingArmed = true;

    const overHour = useHour && hourValue > limit;
    const overRolling = useRolling && rollingValue > limit;
    const hourDue = overHour && state.alertedHour !== window.hour.start;
    const rollingDue = overRolling && state.rollingArmed && state.alertedHour !== window.hour.start;
    if (!hourDue && !rollingDue) return { crossing: null, over: overHour || overRolling };

    state.alertedHour = window.hour.start;
    state.rollingArmed = false;
    const crossing: MeterCrossing = hourDue
      ? { rule, entry, window: 'hour', value: hourValue, limit }
      : { rule, entry, window: 'rolling', value: rollingValue, limit };
    return { crossing, over: true };
  }
}

/** The three reporting stores every egress byte goes to. */
export class BaseMeters {
  readonly remote: MeterStore;
  readonly sourceRemote: MeterStore;
  readonly user: MeterStore;

  constructor(limits: MeterLimits, onRemoteHourClosed: HourClosedListener) {
    this.remote = new MeterStore('remote', limits.maxKeys, onRemoteHourClosed);
    this.sourceRemote = new MeterStore('source-remote', limits.maxKeys, () => {});
    this.user = new MeterStore('user', limits.maxKeys, () => {});
  }

  get evictions(): number {
    return this.remote.evictions + this.sourceRemote.evictions + this.user.evictions;
  }

  closeHoursBefore(hour: Millis): void {
    this.remote.closeHoursBefore(hour);
    this.sourceRemote.closeHoursBefore(hour);
    this.user.closeHoursBefore(hour);
  }
}

/** The key a store of kind `per` uses for a flow, or null when the flow has no such key yet. */
export function meterKey(
  per: 'remote' | 'source-remote' | 'user',
  labels: MeterLabels,
): string | null {
  if (per === 'remote') return labels.remoteIp ?? null;
  if (per === 'source-remote') return `${labels.sourceIp}>${labels.remoteIp}`;
  return labels.user ?? null;
}
