// In-order delivery of one direction of a TCP connection seen on a span port.
//
// Sequence numbers are compared as signed 32-bit distances from the next expected sequence
// number, so wraparound needs no special case as long as a connection keeps less than 2 GiB
// in flight.
//
// Overlap policy: the first copy of a byte wins. Bytes already delivered are never delivered
// again; a retransmission that overlaps delivered data has its new tail delivered and its
// head counted as overlap. Out-of-order segments are copied into a bounded pending list.
//
// Gaps: when the pending list exceeds its limit, or when the peer acknowledges bytes beyond
// a hole while later bytes wait in the pending list, the hole is declared a gap: the
// consumer is told its length and delivery resumes at the first pending segment. At the end
// of the flow, bytes acknowledged or covered by a FIN but never seen are reported as a gap.

import type { Millis } from './types.js';

export interface ReassemblyLimits {
  /** Out-of-order bytes kept per direction before the hole is declared a gap. */
  maxPendingBytes: number;
  /** Out-of-order segments kept per direction. */
  maxPendingSegments: number;
}

export const DEFAULT_REASSEMBLY_LIMITS: ReassemblyLimits = {
  maxPendingBytes: 1 << 20,
  maxPendingSegments: 512,
};

export interface ReassemblyCounters {
  retransmittedBytes: number;
  overlapBytes: number;
  outOfOrderSegments: number;
  pendingLimitHits: number;
  gapBytes: number;
}

export function newReassemblyCounters(): ReassemblyCounters {
  return {
    retransmittedBytes: 0,
    overlapBytes: 0,
    outOfOrderSegments: 0,
    pendingLimitHits: 0,
    gapBytes: 0,
  };
}

export interface StreamConsumer {
  deliver(chunk: Buffer, ts: Millis): void;
  gap(length: number, ts: Millis): void;
}

interface PendingSegment {
  seq: number;
  data: Buffer;
}

/** Signed distance from `b` to `a` in 32-bit sequence space. */
function seqDistance(a: number, b: number): number {
  return (a - b) | 0;
}

export class StreamReassembler {
  private nextSeq = 0;
  private started = false;
  private pending: PendingSegment[] = [];
  private pendingBytes = 0;
  /** Highest sequence number the peer acknowledged. */
  private highestAck = 0;
  private ackSet = false;
  /** Sequence number of the FIN, which ends this direction's data. */
  private finSeq = 0;
  private finSet = false;

  constructor(
    private readonly consumer: StreamConsumer,
    private readonly limits: ReassemblyLimits,
    private readonly counters: ReassemblyCounters,
  ) {}

  get isStarted(): boolean {
    return this.started;
  }

  /** Sets the initial sequence number from a SYN; the first data byte is `isn + 1`. */
  synchronize(isn: number): void {
    if (this.started) return;
    this.nextSeq = (isn + 1) >>> 0;
    this.started = true;
  }

  segment(seq: number, data: Buffer, offset: number, length: number, ts: Millis): void {
    if (length === 0) return;
    if (!this.started) {
      this.nextSeq = seq >>> 0;
      this.started = true;
    }

    const distance = seqDistance(seq, this.nextSeq);
    if (distance <= 0) {
      this.deliverOverlapping(seq, data, offset, length, distance, ts);
      if (this.pending.length > 0) this.drainPending(ts);
      return;
    }

    this.counters.outOfOrderSegments++;
    this.addPending(seq, data.subarray(offset, offset + length), ts);
  }

  /**
   * Records `length` bytes at `seq` that the packet carried but the capture cut off (snap
   * length). In order they are a gap at once; out of order they are left to the end-of-flow
   * estimate.
   */
  missing(seq: number, length: number, ts: Millis): void {
    if (!this.started || length <= 0) return;
    if (seqDistance(seq, this.nextSeq) !== 0) return;
    this.reportGap(length, ts);
    this.nextSeq = (seq + length) >>> 0;
    if (this.pending.length > 0) this.drainPending(ts);
  }

  /** Records an acknowledgement from the peer, which may prove a hole in this direction. */
  acknowledge(ack: number, ts: Millis): void {
    if (!this.started) return;
    if (!this.ackSet || seqDistance(ack, this.highestAck) > 0) {
      this.highestAck = ack >>> 0;
      this.ackSet = true;
    }

    const first = this.pending[0];
    if (first === undefined) return;
    if (seqDistance(ack, first.seq) >= 0) this.skipToFirstPending(ts);
  }

  /** Records the sequence number just past a FIN, the end of this direction's data. */
  finish(finSeq: number): void {
    if (!this.started || this.finSet) return;
    this.finSeq = finSeq >>> 0;
    this.finSet = true;
  }

  /** Delivers whatever is pending, with gaps for holes, at the end of the flow. */
  flush(ts: Millis): void {
    while (this.pending.length > 0) this.skipToFirstPending(ts);
    // The acknowledgement of a FIN is one past the last data byte, so a FIN bounds the end.
    const knownEnd = this.finSet ? this.finSeq : this.ackSet ? this.highestAck : null;
    if (knownEnd !== null) {
      const missing = seqDistance(knownEnd, this.nextSeq);
      if (missing > 0) {
        this.reportGap(missing, ts);
        this.nextSeq = knownEnd;
      }
    }
  }

  private deliverOverlapping(
    seq: number,
    data: Buffer,
    offset: number,
    length: number,
    distance: number,
    ts: Millis,
  ): void {
    const skip = -distance;
    if (skip >= length) {
      this.counters.retransmittedBytes += length;
      return;
    }

    this.counters.overlapBytes += skip;
    this.nextSeq = (seq + length) >>> 0;
    this.consumer.deliver(data.subarray(offset + skip, offset + length), ts);
  }

  private addPending(seq: number, view: Buffer, ts: Millis): void {
    const distance = seqDistance(seq, this.nextSeq);
    let index = this.pending.length;
    while (index > 0) {
      const before = this.pending[index - 1]!;
      const beforeDistance = seqDistance(before.seq, this.nextSeq);
      if (beforeDistance < distance) break;
      if (beforeDistance === distance && before.data.length >= view.length) {
        this.counters.retransmittedBytes += view.length;
        return;
      }
      index--;
    }

    this.pending.splice(index, 0, { seq: seq >>> 0, data: Buffer.from(view) });
    this.pendingBytes += view.length;

    if (
      this.pendingBytes > this.limits.maxPendingBytes ||
      this.pending.length > this.limits.maxPendingSegments
    ) {
      this.counters.pendingLimitHits++;
      this.skipToFirstPending(ts);
    }
  }

  /** Declares the hole before the first pending segment a gap and delivers from there. */
  private skipToFirstPending(ts: Millis): void {
    const first = this.pending[0];
    if (first === undefined) return;

    const hole = seqDistance(first.seq, this.nextSeq);
    if (hole > 0) {
      this.reportGap(hole, ts);
      this.nextSeq = first.seq;
    }
    this.drainPending(ts);
  }

  private drainPending(ts: Millis): void {
    while (this.pending.length > 0) {
      const first = this.pending[0]!;
      const distance = seqDistance(first.seq, this.nextSeq);
      if (distance > 0) return;

      this.pending.shift();
      this.pendingBytes -= first.data.length;
      this.deliverOverlapping(first.seq, first.data, 0, first.data.length, distance, ts);
    }
  }

  private reportGap(length: number, ts: Millis): void {
    this.counters.gapBytes += length;
    this.consumer.gap(length, ts);
  }
}
