// The engine's meters: egress bytes, DICOM instances and files per remote, per (source, remote)
// pair and per user, plus one store per threshold rule so each rule counts only the flows its
// conditions select.

import {
  type HourClosedListener,
  type MeterEntry,
  type MeterLabels,
  MeterStore,
} from '../meter/store.js';
import type { MeterWindow } from '../meter/window.js';
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
  measure: Measure;
  value: number;
  limit: number;
}

/** The quantity a meter rule counts: egress bytes (file bytes for bulk-copy), instances or files. */
export type Measure = 'bytes' | 'instances' | 'files';

function rollingTotal(window: MeterWindow, measure: Measure): number {
  if (measure === 'bytes') return window.rollingBytes;
  return measure === 'instances' ? window.rollingInstances : window.rollingFiles;
}

/** Returns the limits a rule sets. Crossing any of them fires the rule. */
function ruleLimits(rule: CompiledRule): Array<{ measure: Measure; limit: number }> {
  const limits: Array<{ measure: Measure; limit: number }> = [];
  if (rule.kind === 'bulk-dicom' && rule.instances !== undefined) {
    limits.push({ measure: 'instances', limit: rule.instances });
  }
  if (rule.kind === 'bulk-copy' && rule.files !== undefined) {
    limits.push({ measure: 'files', limit: rule.files });
  }
  if (rule.kind !== 'bulk-dicom' && rule.thresholdBytes !== undefined) {
    limits.push({ measure: 'bytes', limit: rule.thresholdBytes });
  }
  return limits;
}

interface AlertState {
  alertedHour: Millis;
  rollingArmed: boolean;
}

export class RuleMeter {
  readonly store: MeterStore;
  private readonly limits: Array<{ measure: Measure; limit: number }>;
  private readonly alertStates = new WeakMap<MeterEntry, AlertState>();

  constructor(
    readonly rule: CompiledRule,
    maxKeys: number,
  ) {
    this.store = new MeterStore(rule.per ?? 'remote', maxKeys, () => {});
    this.limits = ruleLimits(rule);
  }

  /** True when the entry exceeds one of the rule's limits at time `now`, in the rule's windows. */
  exceeds(entry: MeterEntry, now: Millis): boolean {
    const window = entry.window;
    window.advance(now);
    const currentHour = window.hour.start === Math.floor(now / 3_600_000) * 3_600_000;
    for (const { measure, limit } of this.limits) {
      if (this.rule.window !== 'rolling' && currentHour && window.hour[measure] > limit)
        return true;
      if (this.rule.window !== 'hour' && rollingTotal(window, measure) > limit) return true;
    }
    return false;
  }

  /**
   * Checks the entry against the rule's limit after counts were added. Returns a crossing when
   * an alert is due: once per UTC hour bucket, and once each time the rolling window rises
   * above the limit. `over` is true while the limit is exceeded, for block rules.
   */
  check(entry: MeterEntry): { crossing: MeterCrossing | null; over: boolean } {
    const rule = this.rule;
    const window = entry.window;
    let state = this.alertStates.get(entry);
    if (state === undefined) {
      state = { alertedHour: -1, rollingArmed: true };
      this.alertStates.set(entry, state);
    }

    let overHour: MeterCrossing | null = null;
    let overRolling: MeterCrossing | null = null;
    let rollingBelow = true;
    for (const { measure, limit } of this.limits) {
      const hourValue = window.hour[measure];
      const rollingValue = rollingTotal(window, measure);
      if (rollingValue > limit) rollingBelow = false;
      if (rule.window !== 'rolling' && hourValue > limit) {
        overHour ??= { rule, entry, window: 'hour', measure, value: hourValue, limit };
      }
      if (rule.window !== 'hour' && rollingValue > limit) {
        overRolling ??= { rule, entry, window: 'rolling', measure, value: rollingValue, limit };
      }
    }
    if (rollingBelow) state.rollingArmed = true;

    const alertedThisHour = state.alertedHour === window.hour.start;
    const hourDue = overHour !== null && !alertedThisHour;
    const rollingDue = overRolling !== null && state.rollingArmed && !alertedThisHour;
    const over = overHour !== null || overRolling !== null;
    if (!hourDue && !rollingDue) return { crossing: null, over };

    state.alertedHour = window.hour.start;
    state.rollingArmed = false;
    return { crossing: hourDue ? overHour : overRolling, over };
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

/** Returns the key a store of kind `per` uses for a flow, or null when it has none yet. */
export function meterKey(
  per: 'remote' | 'source-remote' | 'user',
  labels: MeterLabels,
): string | null {
  if (per === 'remote') return labels.remoteIp ?? null;
  if (per === 'source-remote') return `${labels.sourceIp}>${labels.remoteIp}`;
  return labels.user ?? null;
}
