// Byte and instance counts for one meter key: the current UTC hour bucket and a rolling
// 60-minute window made of one-minute slots.

import type { Millis } from '../engine/types.js';

export const HOUR_MS = 3_600_000;
const MINUTE_MS = 60_000;
const SLOTS = 60;

export function hourStart(ts: Millis): Millis {
  return Math.floor(ts / HOUR_MS) * HOUR_MS;
}

/** Totals of a closed or open hour bucket. */
export interface HourTotals {
  start: Millis;
  bytes: number;
  instances: number;
  files: number;
  firstTs: Millis;
  lastTs: Millis;
}

export class MeterWindow {
  hour: HourTotals;

  private readonly slotBytes = new Float64Array(SLOTS);
  private readonly slotInstances = new Float64Array(SLOTS);
  private readonly slotFiles = new Float64Array(SLOTS);
  /** Minute index (ts / 60 s) of the newest slot written. */
  private newestMinute = -1;
  rollingBytes = 0;
  rollingInstances = 0;
  rollingFiles = 0;

  constructor(ts: Millis) {
    this.hour = { start: hourStart(ts), bytes: 0, instances: 0, files: 0, firstTs: ts, lastTs: ts };
  }

  /**
   * Adds counts at time `ts`. Returns the hour bucket that closed because `ts` is in a later
   * hour, or null. Packets slightly out of time order are counted in the current slot.
   */
  add(ts: Millis, bytes: number, instances: number, files: number): HourTotals | null {
    let closed: HourTotals | null = null;
    const start = hourStart(ts);
    if (start > this.hour.start) {
      closed = this.hour;
      this.hour = { start, bytes: 0, instances: 0, files: 0, firstTs: ts, lastTs: ts };
    }

    this.hour.bytes += bytes;
    this.hour.instances += instances;
    this.hour.files += files;
    if (ts > this.hour.lastTs) this.hour.lastTs = ts;

    this.advance(ts);
    const slot = this.newestMinute % SLOTS;
    this.slotBytes[slot] = (this.slotBytes[slot] ?? 0) + bytes;
    this.slotInstances[slot] = (this.slotInstances[slot] ?? 0) + instances;
    this.slotFiles[slot] = (this.slotFiles[slot] ?? 0) + files;
    this.rollingBytes += bytes;
    this.rollingInstances += instances;
    this.rollingFiles += files;
    return closed;
  }

  /** Moves the rolling window forward to `ts`, dropping slots older than 60 minutes. */
  advance(ts: Millis): void {
    const minute = Math.floor(ts / MINUTE_MS);
    if (this.newestMinute < 0) {
      this.newestMinute = minute;
      return;
    }
    if (minute <= this.newestMinute) return;

    const steps = Math.min(minute - this.newestMinute, SLOTS);
    for (let i = 1; i <= steps; i++) {
      const slot = (this.newestMinute + i) % SLOTS;
      this.rollingBytes -= this.slotBytes[slot] ?? 0;
      this.rollingInstances -= this.slotInstances[slot] ?? 0;
      this.rollingFiles -= this.slotFiles[slot] ?? 0;
      this.slotBytes[slot] = 0;
      this.slotInstances[slot] = 0;
      this.slotFiles[slot] = 0;
    }
    this.newestMinute = minute;
  }
}
