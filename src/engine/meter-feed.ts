// Feeds a flow's counts to the base meters (per remote, pair and user) and to the meters of the
// flow's active threshold rules, and reports the rules whose limits are now exceeded.

import type {
  HourClosedListener,
  MeterEntry,
  MeterKeyKind,
  MeterLabels,
  MeterStore,
} from '../meter/store.js';
import { hourStart } from '../meter/window.js';
import type { Policy } from '../policy/model.js';
import type { EngineFlow } from './flow.js';
import { BaseMeters, type MeterCrossing, meterKey, RuleMeter } from './meters.js';
import { isMeterRule } from './rules.js';
import type { Millis } from './types.js';

/** Counts that one step adds to the meters. */
export interface MeterCounts {
  /** Egress payload bytes. */
  bytes: number;
  instances: number;
  files: number;
  /** SMB file data bytes that left, for bulk-copy rules. */
  fileBytes: number;
}

export const NO_COUNTS: MeterCounts = { bytes: 0, instances: 0, files: 0, fileBytes: 0 };

/** A rule meter the counts went to: an alert is due when `crossing` is set; `over` is the state now. */
export interface RuleMeterResult {
  meter: RuleMeter;
  crossing: MeterCrossing | null;
  over: boolean;
}

/** One meter entry as the admin API reports it: the current UTC hour and the rolling window. */
export interface MeterSnapshot {
  key: string;
  labels: MeterLabels;
  hour: { start: Millis; bytes: number; instances: number; files: number };
  rolling: { bytes: number; instances: number; files: number };
}

export class MeterFeed {
  private readonly base: BaseMeters;
  private readonly ruleMeters = new Map<string, RuleMeter>();

  constructor(
    private readonly maxKeys: number,
    onRemoteHourClosed: HourClosedListener,
  ) {
    this.base = new BaseMeters({ maxKeys }, onRemoteHourClosed);
  }

  get evictions(): number {
    let evictions = this.base.evictions;
    for (const meter of this.ruleMeters.values()) evictions += meter.store.evictions;
    return evictions;
  }

  /** Creates a meter for each enabled threshold rule of `policy`, keeping unchanged ones. */
  install(policy: Policy): void {
    for (const rule of policy.rules) {
      if (!isMeterRule(rule) || !rule.enabled) continue;
      const existing = this.ruleMeters.get(rule.id);
      if (existing !== undefined && existing.rule === rule) continue;
      this.ruleMeters.set(rule.id, new RuleMeter(rule, this.maxKeys));
    }
  }

  ruleMeter(ruleId: string): RuleMeter | undefined {
    return this.ruleMeters.get(ruleId);
  }

  closeHoursBefore(hour: Millis): void {
    this.base.closeHoursBefore(hour);
  }

  /** Reports every remote's open hour, as when the input ends. */
  closeAll(): void {
    this.base.remote.closeAll();
  }

  /** True when the rule meter's entry for these labels already exceeds its limit at `now`. */
  exceeded(meter: RuleMeter, labels: MeterLabels, now: Millis): boolean {
    const key = meterKey(meter.store.kind, labels);
    if (key === null) return false;
    const entry = meter.store.find(key);
    return entry !== undefined && meter.exceeds(entry, now);
  }

  /** Adds counts for a flow and returns the rule meters they went to. */
  add(
    flow: EngineFlow,
    ts: Millis,
    counts: MeterCounts,
    meterRules: readonly RuleMeter[],
  ): RuleMeterResult[] {
    const { bytes, instances, files } = counts;
    const labels = flowLabels(flow);

    for (const store of [this.base.remote, this.base.sourceRemote, this.base.user]) {
      const entry = this.entryFor(flow, store, store.kind, labels, ts);
      if (entry !== null) store.add(entry, ts, bytes, instances, files);
    }

    const results: RuleMeterResult[] = [];
    for (const meter of meterRules) {
      if (!countsMatter(meter, counts)) continue;
      const entry = this.entryFor(flow, meter, meter.store.kind, labels, ts);
      if (entry === null) continue;

      meter.store.add(entry, ts, ruleByteCount(meter, counts), instances, files);
      results.push({ meter, ...meter.check(entry) });
    }
    return results;
  }

  /**
   * Returns the `n` entries of a base store with the most egress bytes in the rolling window at
   * `now`, and how many entries the store has. Each window is first advanced to `now`, as the
   * next count would do, so that minutes older than 60 drop out. The hour totals are zero for
   * an entry whose bucket belongs to an earlier hour. Sorting is O(k log k) over the store's k
   * entries, at most maxMeterKeys.
   */
  top(per: MeterKeyKind, n: number, now: Millis): { total: number; top: MeterSnapshot[] } {
    const store =
      per === 'remote'
        ? this.base.remote
        : per === 'source-remote'
          ? this.base.sourceRemote
          : this.base.user;
    const currentHour = hourStart(now);
    const snapshots: MeterSnapshot[] = [];
    for (const entry of store.entries()) {
      const window = entry.window;
      window.advance(now);
      const hour = window.hour;
      const inHour = hour.start === currentHour;
      snapshots.push({
        key: entry.key,
        labels: { ...entry.labels },
        hour: {
          start: currentHour,
          bytes: inHour ? hour.bytes : 0,
          instances: inHour ? hour.instances : 0,
          files: inHour ? hour.files : 0,
        },
        rolling: {
          bytes: window.rollingBytes,
          instances: window.rollingInstances,
          files: window.rollingFiles,
        },
      });
    }
    snapshots.sort(
      (a, b) =>
        b.rolling.bytes - a.rolling.bytes ||
        b.hour.bytes - a.hour.bytes ||
        compareKeys(a.key, b.key),
    );
    return { total: store.size, top: snapshots.slice(0, n) };
  }

  /** The flow's entry in a store (a base store or a rule's), looked up once and cached. */
  private entryFor(
    flow: EngineFlow,
    owner: MeterStore | RuleMeter,
    per: MeterKeyKind,
    labels: MeterLabels,
    ts: Millis,
  ): MeterEntry | null {
    const key = meterKey(per, labels);
    if (key === null) return null;
    const cached = flow.meterEntries.get(owner);
    if (cached?.live && cached.key === key) {
      if (labels.remoteDomain !== undefined && cached.labels.remoteDomain === undefined) {
        cached.labels.remoteDomain = labels.remoteDomain;
      }
      return cached;
    }
    const store = owner instanceof RuleMeter ? owner.store : owner;
    const entry = store.entry(key, ts, labels);
    flow.meterEntries.set(owner, entry);
    return entry;
  }
}

/** Returns the bytes a rule's meter counts: SMB file data for bulk-copy, else all egress. */
function ruleByteCount(meter: RuleMeter, counts: MeterCounts): number {
  return meter.rule.kind === 'bulk-copy' ? counts.fileBytes : counts.bytes;
}

/** True when the counts change what the rule's meter measures. */
function countsMatter(meter: RuleMeter, counts: MeterCounts): boolean {
  switch (meter.rule.kind) {
    case 'bulk-dicom':
      return counts.instances > 0;
    case 'bulk-copy':
      return counts.files > 0 || counts.fileBytes > 0;
    default:
      return counts.bytes > 0;
  }
}

/** Orders keys by UTF-16 code units, as `<` does, so ties sort the same on every locale. */
function compareKeys(a: string, b: string): number {
  if (a < b) return -1;
  if (a > b) return 1;
  return 0;
}

function flowLabels(flow: EngineFlow): MeterLabels {
  const labels: MeterLabels = { remoteIp: flow.remote.ip, sourceIp: flow.inside.ip };
  if (flow.remoteName !== undefined) labels.remoteDomain = flow.remoteName;
  const user = flow.meterUser;
  if (user !== undefined) labels.user = user;
  return labels;
}
