// IP fragment reassembly for IPv4 and IPv6, bounded in datagrams, bytes and time.
//
// Policy for overlapping fragments: the bytes that arrived first win. A later fragment only
// fills the ranges still missing, and each overlap is counted. Timeouts use packet time, so a
// capture file replays the same way whatever the reading speed.

export interface FragmentLimits {
  /** Datagrams under reassembly at once; the oldest is dropped to make room. */
  maxFragmentBuffers: number;
  /** Fragment bytes held across all datagrams. */
  maxFragmentBytes: number;
  /** A datagram not completed this long after its first fragment is dropped. */
  fragmentTimeoutMs: number;
}

export const DEFAULT_FRAGMENT_LIMITS: FragmentLimits = {
  maxFragmentBuffers: 1024,
  maxFragmentBytes: 16 * 1024 * 1024,
  fragmentTimeoutMs: 30_000,
};

/** The largest IP payload a fragment offset and length can describe. */
const MAX_DATAGRAM_BYTES = 65_535;

export interface FragmentStats {
  fragmentsReassembled: number;
  fragmentsDropped: number;
  fragmentOverlaps: number;
  malformed: Map<string, number>;
}

interface Piece {
  start: number;
  end: number;
  bytes: Buffer;
}

interface Datagram {
  firstTs: number;
  /** Sorted, non-overlapping. */
  pieces: Piece[];
  fragments: number;
  heldBytes: number;
  /** Payload length, known once the last fragment (more-fragments flag clear) arrives. */
  totalLength: number;
}

function countMalformed(stats: FragmentStats, reason: string): void {
  stats.malformed.set(reason, (stats.malformed.get(reason) ?? 0) + 1);
}

export class FragmentReassembler {
  private readonly datagrams = new Map<string, Datagram>();
  private heldBytes = 0;

  constructor(
    private readonly stats: FragmentStats,
    private readonly limits: FragmentLimits,
  ) {}

  get pendingDatagrams(): number {
    return this.datagrams.size;
  }

  /**
   * Adds the fragment data[start, end) at byte `offset` of the datagram's payload and returns
   * the whole payload once every byte has arrived, or null while some are missing.
   */
  add(
    key: string,
    ts: number,
    offset: number,
    more: boolean,
    data: Buffer,
    start: number,
    end: number,
  ): Buffer | null {
    this.expire(ts);
    const length = end - start;
    if (offset + length > MAX_DATAGRAM_BYTES) {
      countMalformed(this.stats, 'ip-fragment-beyond-max-datagram');
      this.stats.fragmentsDropped++;
      return null;
    }
    if (more && (length === 0 || length % 8 !== 0)) {
      countMalformed(this.stats, 'ip-fragment-length-not-multiple-of-8');
      this.stats.fragmentsDropped++;
      return null;
    }

    let datagram = this.datagrams.get(key);
    if (datagram === undefined) {
      while (this.datagrams.size >= this.limits.maxFragmentBuffers) this.dropOldest();
      datagram = { firstTs: ts, pieces: [], fragments: 0, heldBytes: 0, totalLength: -1 };
      this.datagrams.set(key, datagram);
    }

    if (!more) {
      const last = datagram.pieces[datagram.pieces.length - 1];
      const conflicting =
        (datagram.totalLength >= 0 && datagram.totalLength !== offset + length) ||
        (last !== undefined && last.end > offset + length);
      if (conflicting) {
        countMalformed(this.stats, 'ip-fragment-conflicting-end');
        this.drop(key, datagram, 1);
        return null;
      }
      datagram.totalLength = offset + length;
    } else if (datagram.totalLength >= 0 && offset + length > datagram.totalLength) {
      countMalformed(this.stats, 'ip-fragment-beyond-end');
      this.drop(key, datagram, 1);
      return null;
    }

    datagram.fragments++;
    this.insert(datagram, offset, data, start, end);
    if (this.heldBytes > this.limits.maxFragmentBytes) {
      this.dropOldestUntilWithinBytes(key);
      if (!this.datagrams.has(key)) return null;
    }
    return this.completeIfWhole(key, datagram);
  }

  /** Copies the parts of [offset, offset + length) that no earlier fragment covered. */
  private insert(datagram: Datagram, offset: number, data: Buffer, start: number, end: number) {
    const pieces = datagram.pieces;
    let cursor = offset;
    const stop = offset + (end - start);
    let overlapped = false;
    let index = 0;
    while (cursor < stop) {
      while (index < pieces.length && pieces[index]!.end <= cursor) index++;
      const next = pieces[index];
      if (next !== undefined && next.start <= cursor) {
        overlapped = true;
        cursor = next.end;
        continue;
      }
      const gapEnd = next === undefined ? stop : Math.min(stop, next.start);
      if (next !== undefined && next.start < stop) overlapped = true;
      const bytes = Buffer.allocUnsafe(gapEnd - cursor);
      data.copy(bytes, 0, start + (cursor - offset), start + (gapEnd - offset));
      pieces.splice(index, 0, { start: cursor, end: gapEnd, bytes });
      datagram.heldBytes += bytes.length;
      this.heldBytes += bytes.length;
      index++;
      cursor = gapEnd;
    }
    if (overlapped) this.stats.fragmentOverlaps++;
  }

  private completeIfWhole(key: string, datagram: Datagram): Buffer | null {
    if (datagram.totalLength < 0 || datagram.heldBytes !== datagram.totalLength) return null;
    const payload = Buffer.allocUnsafe(datagram.totalLength);
    for (const piece of datagram.pieces) piece.bytes.copy(payload, piece.start);
    this.datagrams.delete(key);
    this.heldBytes -= datagram.heldBytes;
    this.stats.fragmentsReassembled++;
    return payload;
  }

  private expire(ts: number): void {
    for (const [key, datagram] of this.datagrams) {
      if (ts - datagram.firstTs <= this.limits.fragmentTimeoutMs) break;
      countMalformed(this.stats, 'ip-fragment-timeout');
      this.drop(key, datagram, 0);
    }
  }

  private dropOldest(): void {
    const oldest = this.datagrams.entries().next().value;
    if (oldest === undefined) return;
    countMalformed(this.stats, 'ip-fragment-buffers-exceeded');
    this.drop(oldest[0], oldest[1], 0);
  }

  /** Drops the oldest datagrams, then `current` itself, until the byte limit holds. */
  private dropOldestUntilWithinBytes(current: string): void {
    for (const [key, datagram] of this.datagrams) {
      if (this.heldBytes <= this.limits.maxFragmentBytes) return;
      if (key === current) continue;
      countMalformed(this.stats, 'ip-fragment-bytes-exceeded');
      this.drop(key, datagram, 0);
    }
    const datagram = this.datagrams.get(current);
    if (datagram !== undefined && this.heldBytes > this.limits.maxFragmentBytes) {
      countMalformed(this.stats, 'ip-fragment-bytes-exceeded');
      this.drop(current, datagram, 0);
    }
  }

  /** Forgets a datagram, counting its fragments and `extra` more as dropped. */
  private drop(key: string, datagram: Datagram, extra: number): void {
    this.datagrams.delete(key);
    this.heldBytes -= datagram.heldBytes;
    this.stats.fragmentsDropped += datagram.fragments + extra;
  }
}
