import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  newReassemblyCounters,
  type ReassemblyLimits,
  StreamReassembler,
} from '../../../src/engine/reassembly.js';

interface Output {
  bytes: number[];
  gaps: number[];
}

function reassembler(
  limits: ReassemblyLimits = { maxPendingBytes: 1 << 20, maxPendingSegments: 512 },
) {
  const output: Output = { bytes: [], gaps: [] };
  const counters = newReassemblyCounters();
  const stream = new StreamReassembler(
    {
      deliver: (chunk) => output.bytes.push(...chunk),
      gap: (length) => output.gaps.push(length),
    },
    limits,
    counters,
  );
  return { stream, output, counters };
}

function bytes(from: number, length: number): Buffer {
  return Buffer.from(Array.from({ length }, (_, index) => (from + index) & 0xff));
}

describe('StreamReassembler', () => {
  it('delivers in-order segments after a SYN', () => {
    const { stream, output } = reassembler();
    stream.synchronize(999);
    stream.segment(1000, bytes(0, 10), 0, 10, 1);
    stream.segment(1010, bytes(10, 5), 0, 5, 2);
    expect(output.bytes).toEqual([...bytes(0, 15)]);
    expect(output.gaps).toEqual([]);
  });

  it('reorders out-of-order segments', () => {
    const { stream, output, counters } = reassembler();
    stream.synchronize(0);
    stream.segment(11, bytes(10, 10), 0, 10, 1);
    stream.segment(1, bytes(0, 10), 0, 10, 2);
    expect(output.bytes).toEqual([...bytes(0, 20)]);
    expect(counters.outOfOrderSegments).toBe(1);
  });

  it('drops retransmissions and keeps the first copy of overlaps', () => {
    const { stream, output, counters } = reassembler();
    stream.synchronize(0);
    stream.segment(1, bytes(0, 10), 0, 10, 1);
    stream.segment(1, Buffer.alloc(10, 0xee), 0, 10, 2);
    stream.segment(6, Buffer.concat([Buffer.alloc(5, 0xee), bytes(10, 5)]), 0, 10, 3);
    expect(output.bytes).toEqual([...bytes(0, 15)]);
    expect(counters.retransmittedBytes).toBe(10);
    expect(counters.overlapBytes).toBe(5);
  });

  it('handles sequence number wraparound', () => {
    const { stream, output } = reassembler();
    stream.synchronize(0xfffffff9);
    stream.segment(0xfffffffa, bytes(0, 10), 0, 10, 1);
    stream.segment(4, bytes(10, 10), 0, 10, 2);
    expect(output.bytes).toEqual([...bytes(0, 20)]);
  });

  it('starts mid-stream at the first segment seen', () => {
    const { stream, output } = reassembler();
    stream.segment(123456, bytes(0, 4), 0, 4, 1);
    stream.segment(123460, bytes(4, 4), 0, 4, 2);
    expect(output.bytes).toEqual([...bytes(0, 8)]);
  });

  it('declares a gap when the peer acknowledges past a hole', () => {
    const { stream, output, counters } = reassembler();
    stream.synchronize(0);
    stream.segment(1, bytes(0, 10), 0, 10, 1);
    stream.segment(21, bytes(20, 10), 0, 10, 2);
    stream.acknowledge(31, 3);
    expect(output.gaps).toEqual([10]);
    expect(output.bytes).toEqual([...bytes(0, 10), ...bytes(20, 10)]);
    expect(counters.gapBytes).toBe(10);
  });

  it('forces a gap when the pending limit is exceeded', () => {
    const { stream, output, counters } = reassembler({
      maxPendingBytes: 15,
      maxPendingSegments: 100,
    });
    stream.synchronize(0);
    stream.segment(11, bytes(10, 10), 0, 10, 1);
    expect(output.bytes).toEqual([]);
    stream.segment(21, bytes(20, 10), 0, 10, 2);
    expect(counters.pendingLimitHits).toBe(1);
    expect(output.gaps).toEqual([10]);
    expect(output.bytes).toEqual([...bytes(10, 20)]);
  });

  it('reports bytes covered by a FIN but never seen as a gap at flush', () => {
    const { stream, output } = reassembler();
    stream.synchronize(0);
    stream.segment(1, bytes(0, 10), 0, 10, 1);
    stream.finish(51);
    stream.acknowledge(52, 2);
    stream.flush(3);
    expect(output.gaps).toEqual([40]);
  });

  it('reports a snap-length cut as a gap in order', () => {
    const { stream, output } = reassembler();
    stream.synchronize(0);
    stream.segment(1, bytes(0, 10), 0, 10, 1);
    stream.missing(11, 90, 1);
    stream.segment(101, bytes(100, 5), 0, 5, 2);
    expect(output.gaps).toEqual([90]);
    expect(output.bytes).toEqual([...bytes(0, 10), ...bytes(100, 5)]);
  });

  it('delivers each byte once for any segment order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 30 }),
        fc.array(fc.nat(), { maxLength: 60 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        (sizes, shuffle, isn) => {
          const segments: Array<{ offset: number; length: number }> = [];
          let offset = 0;
          for (const size of sizes) {
            segments.push({ offset, length: size });
            offset += size;
          }
          const order = [...segments];
          for (let i = 0; i < shuffle.length && order.length > 1; i++) {
            const a = shuffle[i]! % order.length;
            const b = (i * 7) % order.length;
            [order[a], order[b]] = [order[b]!, order[a]!];
          }
          order.push(...segments.filter((_, index) => index % 3 === 0));

          const { stream, output } = reassembler();
          stream.synchronize(isn);
          const all = bytes(0, offset);
          for (const segment of order) {
            stream.segment(
              (isn + 1 + segment.offset) >>> 0,
              all,
              segment.offset,
              segment.length,
              1,
            );
          }
          stream.flush(2);
          expect(output.gaps).toEqual([]);
          expect(Buffer.from(output.bytes).equals(all)).toBe(true);
        },
      ),
    );
  });
});
