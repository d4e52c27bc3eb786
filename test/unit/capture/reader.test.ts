import { Readable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { newCaptureStats, readCapture } from '../../../src/capture/reader.js';
import {
  hex,
  pcapHeader,
  pcapngBlock,
  pcapngEnhancedPacket,
  pcapngInterface,
  pcapngOption,
  pcapngSection,
  pcapRecord,
  readAll,
  u16,
  u32,
} from './builders.js';

const PACKET_A = Buffer.from('aaaaaaaaaa', 'hex');
const PACKET_B = Buffer.from('bbbbbbbbbbbbbbbb', 'hex');

describe('classic pcap', () => {
  it('reads a big-endian microsecond file', async () => {
    const file = hex(`
      a1b2c3d4            # magic, microsecond, big-endian
      0002 0004           # version 2.4
      00000000 00000000   # reserved
      00040000            # snaplen 262144
      00000001            # link type 1, Ethernet
      65000000 0007a11f   # ts 1694498816 s + 499999 us
      00000003 0000003c   # captured 3, original 60
      010203              # data
    `);
    const { frames, stats } = await readAll(file);
    expect(frames).toEqual([
      {
        linkType: 1,
        bytes: '010203',
        originalLength: 60,
        ts: 1694498816 * 1000 + 499.999,
        interfaceId: 0,
        fcsLength: 0,
      },
    ]);
    expect(stats.packets).toBe(1);
    expect(stats.bytes).toBe(3);
  });

  it('reads a little-endian nanosecond file', async () => {
    const file = hex(`
      4d3cb2a1            # magic a1b23c4d little-endian: nanosecond
      0200 0400           # version 2.4
      00000000 00000000
      ffff0000            # snaplen 65535
      65000000            # link type 101, raw IP
      00000065 ff c9 9a 3b  # ts 0x65000000 s + 999999999 ns
      02000000 02000000   # captured 2, original 2
      4500
    `);
    const { frames } = await readAll(file);
    expect(frames).toHaveLength(1);
    expect(frames[0]!.linkType).toBe(101);
    expect(frames[0]!.ts).toBeCloseTo(0x65000000 * 1000 + 999.999999, 6);
  });

  it('takes the FCS length from the link-type field', async () => {
    // FCS:4 = 2 (16-bit words), f = 1 (bit 26), link type 1.
    const file = Buffer.concat([
      pcapHeader({ littleEndian: true, linkType: 0x24000001 }),
      pcapRecord(true, 1, 0, PACKET_A),
    ]);
    const { frames } = await readAll(file);
    expect(frames[0]!.linkType).toBe(1);
    expect(frames[0]!.fcsLength).toBe(4);
  });

  it('ignores FCS bits when the f flag is clear', async () => {
    const file = Buffer.concat([
      pcapHeader({ littleEndian: true, linkType: 0x20000001 }),
      pcapRecord(true, 1, 0, PACKET_A),
    ]);
    const { frames } = await readAll(file);
    expect(frames[0]!.fcsLength).toBe(0);
  });

  it('counts a truncated last record', async () => {
    const whole = Buffer.concat([
      pcapHeader({ littleEndian: false, linkType: 1 }),
      pcapRecord(false, 1, 0, PACKET_A),
      pcapRecord(false, 2, 0, PACKET_B),
    ]);
    const { frames, stats } = await readAll(whole.subarray(0, whole.length - 3));
    expect(frames.map((f) => f.bytes)).toEqual([PACKET_A.toString('hex')]);
    expect(stats.truncatedRecords).toBe(1);
    expect(stats.warnings.get('pcap-truncated-record')).toBe(1);
  });

  it('resyncs after a corrupt record length', async () => {
    const le = true;
    const corrupt = Buffer.concat([u32(2, le), u32(0, le), u32(0x7fffffff, le), u32(5, le)]);
    const file = Buffer.concat([
      pcapHeader({ littleEndian: le, linkType: 1, snaplen: 1500 }),
      pcapRecord(le, 100, 0, PACKET_A),
      corrupt,
      Buffer.from('0102030405', 'hex'), // the corrupt record's bytes
      pcapRecord(le, 101, 0, PACKET_B),
      pcapRecord(le, 102, 0, PACKET_A),
    ]);
    const { frames, stats } = await readAll(file);
    expect(frames.map((f) => f.ts)).toEqual([100_000, 101_000, 102_000]);
    expect(stats.corruptRecords).toBe(1);
    expect(stats.warnings.get('pcap-implausible-record-header')).toBe(1);
    expect(stats.warnings.get('pcap-resync')).toBe(1);
  });

  it('treats records above a lowered maxRecordBytes as corrupt', async () => {
    const big = Buffer.alloc(200, 0x11);
    const file = Buffer.concat([
      pcapHeader({ littleEndian: true, linkType: 1 }),
      pcapRecord(true, 1, 0, PACKET_A),
      pcapRecord(true, 2, 0, big),
      pcapRecord(true, 3, 0, PACKET_B),
      pcapRecord(true, 4, 0, PACKET_A),
    ]);
    const normal = await readAll(file);
    expect(normal.frames).toHaveLength(4);
    const lowered = await readAll(file, [file.length], { maxRecordBytes: 100 });
    expect(lowered.stats.corruptRecords).toBe(1);
    expect(lowered.frames.map((f) => f.ts)).toEqual([1000, 3000, 4000]);
  });
});

describe('pcapng', () => {
  function twoInterfaceFile(le: boolean): Buffer {
    return Buffer.concat([
      pcapngSection(le),
      // Interface 0: Ethernet, default microsecond resolution, 32-bit FCS.
      pcapngInterface(le, 1, [pcapngOption(13, Buffer.from([32]), le)]),
      // Interface 1: Linux SLL, if_tsresol 9 (nanoseconds), if_tsoffset 10 s.
      pcapngInterface(le, 113, [
        pcapngOption(9, Buffer.from([9]), le),
        pcapngOption(14, le ? hex('0a00000000000000') : hex('000000000000000a'), le),
      ]),
      pcapngEnhancedPacket(le, 0, 1_500_000n, PACKET_A),
      pcapngBlock(0x0bad0bad, Buffer.from('unknown'), le),
      pcapngEnhancedPacket(le, 1, 2_000_000_001n, PACKET_B, 99),
    ]);
  }

  for (const le of [true, false]) {
    it(`reads two interfaces (${le ? 'little' : 'big'}-endian)`, async () => {
      const { frames, stats } = await readAll(twoInterfaceFile(le));
      expect(frames).toEqual([
        {
          linkType: 1,
          bytes: PACKET_A.toString('hex'),
          originalLength: 5,
          ts: 1500,
          interfaceId: 0,
          fcsLength: 4,
        },
        {
          linkType: 113,
          bytes: PACKET_B.toString('hex'),
          originalLength: 99,
          ts: 2000.000001 + 10_000,
          interfaceId: 1,
          fcsLength: 0,
        },
      ]);
      expect(stats.skippedBlocks).toBe(1);
      expect(stats.warnings.get('pcapng-unknown-block')).toBe(1);
    });
  }

  it('reads a power-of-two tsresol', async () => {
    const le = true;
    const file = Buffer.concat([
      pcapngSection(le),
      pcapngInterface(le, 101, [pcapngOption(9, Buffer.from([0x80 | 10]), le)]), // 2^-10 s
      pcapngEnhancedPacket(le, 0, 2048n, PACKET_A),
    ]);
    const { frames } = await readAll(file);
    expect(frames[0]!.ts).toBe(2000);
  });

  it('reads Simple and obsolete Packet Blocks', async () => {
    const le = true;
    const simple = pcapngBlock(3, Buffer.concat([u32(8, le), PACKET_B]), le);
    const simpleCut = pcapngBlock(3, Buffer.concat([u32(100, le), PACKET_B]), le);
    const obsolete = pcapngBlock(
      2,
      Buffer.concat([
        u16(0, le),
        u16(0, le),
        u32(0, le),
        u32(3000, le),
        u32(5, le),
        u32(5, le),
        PACKET_A,
      ]),
      le,
    );
    const file = Buffer.concat([
      pcapngSection(le),
      pcapngInterface(le, 1, [], 6), // snaplen 6
      simple,
      simpleCut,
      obsolete,
    ]);
    const { frames } = await readAll(file);
    expect(frames.map((f) => [f.bytes, f.originalLength, f.ts])).toEqual([
      ['bbbbbbbbbbbb', 8, 0], // cut to the snaplen of 6
      ['bbbbbbbbbbbb', 100, 0],
      [PACKET_A.toString('hex'), 5, 3],
    ]);
  });

  it('resets interfaces at each section, whatever its byte order', async () => {
    const file = Buffer.concat([
      pcapngSection(true),
      pcapngInterface(true, 1),
      pcapngEnhancedPacket(true, 0, 1000n, PACKET_A),
      pcapngSection(false),
      pcapngInterface(false, 101),
      pcapngEnhancedPacket(false, 0, 2000n, PACKET_B),
      pcapngEnhancedPacket(false, 1, 3000n, PACKET_B), // no interface 1 in this section
    ]);
    const { frames, stats } = await readAll(file);
    expect(frames.map((f) => f.linkType)).toEqual([1, 101]);
    expect(stats.warnings.get('pcapng-unknown-interface')).toBe(1);
  });

  it('resyncs on the next block after a corrupt length', async () => {
    const le = true;
    const damaged = pcapngEnhancedPacket(le, 0, 2000n, PACKET_B);
    damaged.writeUInt32LE(0x00ffff00, 4); // total length: not a multiple of the block
    const file = Buffer.concat([
      pcapngSection(le),
      pcapngInterface(le, 1),
      pcapngEnhancedPacket(le, 0, 1000n, PACKET_A),
      damaged,
      pcapngEnhancedPacket(le, 0, 3000n, PACKET_A),
    ]);
    const { frames, stats } = await readAll(file);
    expect(frames.map((f) => f.ts)).toEqual([1, 3]);
    expect(stats.corruptRecords).toBe(1);
    expect(stats.warnings.get('pcapng-resync')).toBe(1);
  });

  it('counts a truncated last block', async () => {
    const le = false;
    const whole = Buffer.concat([
      pcapngSection(le),
      pcapngInterface(le, 1),
      pcapngEnhancedPacket(le, 0, 1000n, PACKET_A),
      pcapngEnhancedPacket(le, 0, 2000n, PACKET_B),
    ]);
    const { frames, stats } = await readAll(whole.subarray(0, whole.length - 1));
    expect(frames).toHaveLength(1);
    expect(stats.truncatedRecords).toBe(1);
  });

  it('rejects a packet block longer than a lowered maxRecordBytes', async () => {
    const le = true;
    const file = Buffer.concat([
      pcapngSection(le),
      pcapngInterface(le, 1),
      pcapngEnhancedPacket(le, 0, 1000n, Buffer.alloc(8000)),
      pcapngEnhancedPacket(le, 0, 2000n, PACKET_A),
    ]);
    expect((await readAll(file)).frames).toHaveLength(2);
    const lowered = await readAll(file, [file.length], { maxRecordBytes: 1000 });
    expect(lowered.frames.map((f) => f.ts)).toEqual([2]);
    expect(lowered.stats.corruptRecords).toBe(1);
  });
});

describe('input framing', () => {
  const pcapFile = Buffer.concat([
    pcapHeader({ littleEndian: true, linkType: 1 }),
    pcapRecord(true, 1, 1, PACKET_A),
    pcapRecord(true, 2, 2, PACKET_B, 1514),
    pcapRecord(true, 3, 3, Buffer.alloc(0)),
  ]);
  const pcapngFile = Buffer.concat([
    pcapngSection(false),
    pcapngInterface(false, 1),
    pcapngInterface(false, 276, [pcapngOption(9, Buffer.from([3]), false)]),
    pcapngEnhancedPacket(false, 1, 7n, PACKET_A),
    pcapngBlock(5, Buffer.alloc(20), false), // Interface Statistics
    pcapngEnhancedPacket(false, 0, 9n, PACKET_B),
  ]);

  for (const [name, file] of [
    ['pcap', pcapFile],
    ['pcapng', pcapngFile],
  ] as const) {
    it(`gives the same ${name} frames for every chunk size and split offset`, async () => {
      const expected = await readAll(file);
      expect(expected.frames.length).toBeGreaterThan(1);
      for (let size = 1; size <= file.length; size++) {
        const result = await readAll(file, [size]);
        expect(result.frames).toEqual(expected.frames);
      }
      for (let split = 1; split < file.length; split++) {
        const result = await readAll(file, [split, file.length]);
        expect(result.frames).toEqual(expected.frames);
        expect(result.stats).toEqual(expected.stats);
      }
    });
  }

  it('rejects an empty input with CAPTURE_FORMAT', async () => {
    await expect(readAll(Buffer.alloc(0))).rejects.toMatchObject({ code: 'CAPTURE_FORMAT' });
  });

  it('rejects garbage with CAPTURE_FORMAT naming the magic', async () => {
    const error = readAll(Buffer.from('GET / HTTP/1.1\r\n'));
    await expect(error).rejects.toMatchObject({ code: 'CAPTURE_FORMAT' });
    await expect(error).rejects.toThrow('0x47455420');
  });

  it('rejects a truncated pcap file header', async () => {
    await expect(readAll(pcapFile.subarray(0, 10))).rejects.toMatchObject({
      code: 'CAPTURE_FORMAT',
    });
  });

  it('never throws on random bytes after a valid header', async () => {
    const headers = [pcapFile.subarray(0, 24), pcapngFile.subarray(0, 28)];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...headers),
        fc.uint8Array({ maxLength: 3000 }),
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 5 }),
        async (header, body, sizes) => {
          const file = Buffer.concat([header, Buffer.from(body)]);
          const { stats } = await readAll(file, sizes, { maxRecordBytes: 1024 });
          expect(stats.packets).toBeGreaterThanOrEqual(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps the carry buffer bounded on a huge declared length', async () => {
    // A pcapng block that declares 200 KB (within the limit) and never ends: the reader must
    // keep at most one unit, so feeding 50 MB of filler yields no frames and no growth.
    const le = true;
    const start = Buffer.concat([pcapngSection(le), pcapngInterface(le, 1)]);
    const header = Buffer.concat([u32(6, le), u32(200_000, le)]);
    const filler = Buffer.alloc(1024 * 1024, 0x41);
    async function* chunks() {
      yield start;
      yield header;
      for (let i = 0; i < 50; i++) yield filler;
    }
    const stats = newCaptureStats();
    const before = process.memoryUsage().arrayBuffers;
    await readCapture(Readable.from(chunks()), () => {}, stats);
    const after = process.memoryUsage().arrayBuffers;
    expect(stats.packets).toBe(0);
    expect(stats.corruptRecords).toBeGreaterThan(0);
    expect(after - before).toBeLessThan(8 * 1024 * 1024);
  });
});
