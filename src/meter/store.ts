// A bounded set of meters, one per key (a remote, a source and remote pair, a user).
// The least recently used key is evicted when the store is full; its open hour bucket is
// handed to `onHourClosed` with `evicted` set, and the eviction is counted.

import { LRUCache } from 'lru-cache';
import type { Millis } from '../engine/types.js';
import { type HourTotals, MeterWindow } from './window.js';

export type MeterKeyKind = 'remote' | 'source-remote' | 'user';

export interface MeterEntry {
  readonly key: string;
  readonly kind: MeterKeyKind;
  readonly window: MeterWindow;
  /** Labels carried into events: remote address and best-known name, source address, user. */
  readonly labels: MeterLabels;
  /** False once the store evicted this entry; holders must look the key up again. */
  live: boolean;
}

export interface MeterLabels {
  remoteIp?: string;
  remoteDomain?: string;
  sourceIp?: string;
  user?: string;
}

export type HourClosedListener = (entry: MeterEntry, totals: HourTotals, evicted: boolean) => void;

export class MeterStore {
  readonly kind: MeterKeyKind;
  evictions = 0;

  private readonly cache: LRUCache<string, MeterEntry>;
  private readonly onHourClosed: HourClosedListener;

  constructor(kind: MeterKeyKind, maxEntries: number, onHourClosed: HourClosedListener) {
    this.kind = kind;
    this.onHourClosed = onHourClosed;
    this.cache = new LRUCache<string, MeterEntry>({
      max: maxEntries,
      dispose: (entry, _key, reason) => {
        if (reason !== 'evict') return;
        entry.live = false;
        this.evictions++;
        this.emitOpenHour(entry, true);
      },
    });
  }

  get size(): number {
    return this.cache.size;
  }

  /** Returns the entry for `key`, creating it at time `ts` when it is new. */
  entry(key: string, ts: Millis, labels: MeterLabels): MeterEntry {
    let entry = this.cache.get(key);
    if (entry === undefined) {
      entry = {
        key,
        kind: this.kind,
        window: new MeterWindow(ts),
        labels: { ...labels },
        live: true,
      };
      this.cache.set(key, entry);
    }
    return entry;
  }

  /** Returns the entry for `key` without creating it or changing its recency. */
  find(key: string): MeterEntry | undefined {
    return this.cache.peek(key);
  }

  /** Adds counts to an entry, reporting the hour bucket that closed, if any. */
  add(entry: MeterEntry, ts: Millis, bytes: number, instances: number, files: number): void {
    const closed = entry.window.add(ts, bytes, instances, files);
    if (closed !== null && hasCounts(closed)) this.onHourClosed(entry, closed, false);
  }

  /** Closes every hour bucket that started before `hour`, as when the capture clock moves on. */
  closeHoursBefore(hour: Millis): void {
    for (const entry of this.cache.values()) {
      const totals = entry.window.hour;
      if (totals.start < hour && hasCounts(totals)) {
        this.onHourClosed(entry, totals, false);
        entry.window.hour = {
          start: hour,
          bytes: 0,
          instances: 0,
          files: 0,
          firstTs: hour,
          lastTs: hour,
        };
      }
    }
  }

  /** Reports every open hour bucket, as when the input ends. */
  closeAll(): void {
    for (const entry of this.cache.values()) this.emitOpenHour(entry, false);
  }

  entries(): IterableIterator<MeterEntry> {
    return this.cache.values();
  }

  private emitOpenHour(entry: MeterEntry, evicted: boolean): void {
    const totals = entry.window.hour;
    if (hasCounts(totals)) this.onHourClosed(entry, totals, evicted);
  }
}

function hasCounts(totals: HourTotals): boolean {
  return totals.bytes > 0 || totals.instances > 0 || totals.files > 0;
}
