// Reads pcap and pcapng captures from a stream in large chunks, parsing records in place.
//
// Records are handed out as views into the chunk they arrived in. Only a record that
// straddles two chunks is copied, into one carry buffer bounded by the largest unit the
// parser may ask for (about maxRecordBytes), so memory stays bounded whatever the input.
//
//   chunk n:   [ rec | rec | re ]      chunk n+1: [ c | rec | rec | r ]
//                          └─ copied ─┬─ copied ┘                 └─ copied, waits
//                                   carry

import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import {
  CaptureFormatError,
  type CaptureStats,
  type Frame,
  type ParserContext,
  type RecordParser,
} from './frame.js';
import { PCAP_MAGIC_NS, PCAP_MAGIC_US, PcapParser } from './pcap.js';
import { PCAPNG_SHB_TYPE, PcapngParser } from './pcapng.js';

export type { CaptureStats, Frame } from './frame.js';
export { CaptureFormatError, newCaptureStats } from './frame.js';

export const DEFAULT_MAX_RECORD_BYTES = 256 * 1024;
/** Read size for capture files: large enough that per-chunk work is negligible. */
export const CAPTURE_READ_CHUNK_BYTES = 2 * 1024 * 1024;

export interface ReadCaptureOptions {
  /** Records (pcap) or packet data (pcapng) longer than this are treated as corrupt. */
  maxRecordBytes?: number;
}

/** Chooses the parser from the first four bytes, then hands over to it. */
class FormatDetector implements RecordParser {
  readonly maxUnitBytes = 4;
  parser: RecordParser | null = null;

  constructor(private readonly ctx: ParserContext) {}

  step(buf: Buffer, start: number, end: number): number {
    if (end - start < 4) return -4;
    const magicBE = buf.readUInt32BE(start);
    const magicLE = buf.readUInt32LE(start);
    if (magicBE === PCAPNG_SHB_TYPE) {
      this.parser = new PcapngParser(this.ctx);
    } else if (
      magicBE === PCAP_MAGIC_US ||
      magicBE === PCAP_MAGIC_NS ||
      magicLE === PCAP_MAGIC_US ||
      magicLE === PCAP_MAGIC_NS
    ) {
      this.parser = new PcapParser(this.ctx);
    } else {
      throw new CaptureFormatError(
        `input is neither pcap nor pcapng: first 4 bytes are 0x${magicBE.toString(16).padStart(8, '0')}`,
      );
    }
    return this.parser.step(buf, start, end);
  }

  finish(_buf: Buffer, start: number, end: number): void {
    throw new CaptureFormatError(
      `capture input is too short to identify: ${end - start} bytes, a file header needs at least 4`,
    );
  }
}

/** Feeds chunks to a RecordParser, copying only the units that straddle chunks. */
class ChunkDriver {
  private carry: Buffer = Buffer.alloc(0);
  private carryStart = 0;
  private carryEnd = 0;
  private readonly detector: FormatDetector;

  constructor(ctx: ParserContext) {
    this.detector = new FormatDetector(ctx);
  }

  private get parser(): RecordParser {
    return this.detector.parser ?? this.detector;
  }

  push(chunk: Buffer): void {
    let pos = 0;
    while (this.carryEnd > this.carryStart) {
      const consumed = this.parser.step(this.carry, this.carryStart, this.carryEnd);
      if (consumed > 0) {
        this.carryStart += consumed;
        // The carry ends with chunk[0, pos). When what is left of it all came from this chunk,
        // parse on from the chunk itself instead of copying it byte by byte.
        const left = this.carryEnd - this.carryStart;
        if (left <= pos) {
          pos -= left;
          this.carryStart = this.carryEnd;
        }
        continue;
      }
      const have = this.carryEnd - this.carryStart;
      // The parser requests more bytes than the carry contains. The guard keeps a faulty
      // request from looping.
      const need = Math.max(-consumed, have + 1);
      this.reserve(need);
      const take = Math.min(need - have, chunk.length - pos);
      chunk.copy(this.carry, this.carryEnd, pos, pos + take);
      this.carryEnd += take;
      pos += take;
      if (this.carryEnd - this.carryStart < need) return;
    }
    this.carryStart = 0;
    this.carryEnd = 0;

    while (pos < chunk.length) {
      const consumed = this.parser.step(chunk, pos, chunk.length);
      if (consumed <= 0) break;
      pos += consumed;
    }
    if (pos < chunk.length) {
      this.reserve(chunk.length - pos);
      chunk.copy(this.carry, 0, pos);
      this.carryEnd = chunk.length - pos;
    }
  }

  end(): void {
    this.parser.finish(this.carry, this.carryStart, this.carryEnd);
  }

  /** Makes room for `need` bytes from carryStart, moving or growing the carry buffer. */
  private reserve(need: number): void {
    if (this.carryStart + need <= this.carry.length) return;
    const have = this.carryEnd - this.carryStart;
    if (need <= this.carry.length) {
      this.carry.copy(this.carry, 0, this.carryStart, this.carryEnd);
    } else {
      const limit = Math.max(this.parser.maxUnitBytes, need);
      const grown = Buffer.allocUnsafe(
        Math.min(Math.max(need, this.carry.length * 2, 4096), limit),
      );
      this.carry.copy(grown, 0, this.carryStart, this.carryEnd);
      this.carry = grown;
    }
    this.carryStart = 0;
    this.carryEnd = have;
  }
}

/**
 * Reads classic pcap or pcapng (detected from the magic) from a stream, calling onFrame for
 * each packet record with one reused Frame object. Resolves at end of input. Damaged input is
 * counted in `stats` and skipped: pcap resyncs on the next pair of plausible record headers,
 * pcapng on the next block whose two length fields agree. Rejects with a CaptureFormatError
 * (code 'CAPTURE_FORMAT') for input that is not pcap or pcapng, or too short to tell, and with
 * the stream's own error when reading fails.
 */
export async function readCapture(
  input: NodeJS.ReadableStream,
  onFrame: (frame: Frame) => void,
  stats: CaptureStats,
  options: ReadCaptureOptions = {},
): Promise<void> {
  const driver = newDriver(onFrame, stats, options);
  for await (const chunk of input) {
    driver.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : (chunk as Buffer));
  }
  driver.end();
}

/** Chunks read between two returns to the event loop, so signals and timers still run. */
const CHUNKS_PER_YIELD = 16;

/**
 * Reads a capture file like readCapture, with synchronous reads into one reused buffer. For a
 * file in the page cache this avoids the idle time of stream reads; records are still handed
 * out as views, valid only during onFrame.
 */
export async function readCaptureFile(
  path: string,
  onFrame: (frame: Frame) => void,
  stats: CaptureStats,
  options: ReadCaptureOptions = {},
): Promise<void> {
  const driver = newDriver(onFrame, stats, options);
  const buffer = Buffer.allocUnsafe(CAPTURE_READ_CHUNK_BYTES);
  const fd = openSync(path, 'r');
  try {
    for (let chunks = 1; ; chunks++) {
      const length = readSync(fd, buffer, 0, buffer.length, null);
      if (length === 0) break;
      driver.push(buffer.subarray(0, length));
      if (chunks % CHUNKS_PER_YIELD === 0) await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    closeSync(fd);
  }
  driver.end();
}

function newDriver(
  onFrame: (frame: Frame) => void,
  stats: CaptureStats,
  options: ReadCaptureOptions,
): ChunkDriver {
  return new ChunkDriver({
    frame: newFrame(),
    onFrame,
    stats,
    maxRecordBytes: checkedMaxRecordBytes(options),
  });
}

function checkedMaxRecordBytes(options: ReadCaptureOptions): number {
  const maxRecordBytes = options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
  if (!Number.isInteger(maxRecordBytes) || maxRecordBytes < 64) {
    throw new RangeError(`maxRecordBytes ${maxRecordBytes} is invalid: expected an integer >= 64`);
  }
  return maxRecordBytes;
}

function newFrame(): Frame {
  return {
    linkType: 0,
    data: Buffer.alloc(0),
    offset: 0,
    length: 0,
    originalLength: 0,
    ts: 0,
    interfaceId: 0,
    fcsLength: 0,
  };
}

/** Opens a capture file for readCapture; '-' reads standard input. */
export function openCaptureFile(path: string): NodeJS.ReadableStream {
  if (path === '-') return process.stdin;
  return createReadStream(path, { highWaterMark: CAPTURE_READ_CHUNK_BYTES });
}
