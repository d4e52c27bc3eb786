// Helpers that build capture files and packets byte by byte for the capture tests.

import { Readable } from 'node:stream';
import type { Frame } from '../../../src/capture/frame.js';
import { newCaptureStats, readCapture } from '../../../src/capture/reader.js';

/** Parses annotated hex: whitespace is ignored and `#` starts a comment to the end of the line. */
export function hex(text: string): Buffer {
  const digits = text
    .split('\n')
    .map((line) => line.replace(/#.*/, ''))
    .join('')
    .replace(/\s+/g, '');
  return Buffer.from(digits, 'hex');
}

export function u32(value: number, littleEndian: boolean): Buffer {
  const b = Buffer.alloc(4);
  if (littleEndian) b.writeUInt32LE(value >>> 0);
  else b.writeUInt32BE(value >>> 0);
  return b;
}

export function u16(value: number, littleEndian: boolean): Buffer {
  const b = Buffer.alloc(2);
  if (littleEndian) b.writeUInt16LE(value);
  else b.writeUInt16BE(value);
  return b;
}

export function pcapHeader(opts: {
  littleEndian: boolean;
  nanosecond?: boolean;
  linkType: number;
  snaplen?: number;
}): Buffer {
  const le = opts.littleEndian;
  return Buffer.concat([
    u32(opts.nanosecond ? 0xa1b23c4d : 0xa1b2c3d4, le),
    u16(2, le),
    u16(4, le),
    u32(0, le),
    u32(0, le),
    u32(opts.snaplen ?? 262144, le),
    u32(opts.linkType, le),
  ]);
}

export function pcapRecord(
  le: boolean,
  tsSec: number,
  frac: number,
  data: Buffer,
  originalLength = data.length,
): Buffer {
  return Buffer.concat([
    u32(tsSec, le),
    u32(frac, le),
    u32(data.length, le),
    u32(originalLength, le),
    data,
  ]);
}

function pad4(data: Buffer): Buffer {
  const padding = (4 - (data.length % 4)) % 4;
  return Buffer.concat([data, Buffer.alloc(padding)]);
}

export function pcapngBlock(type: number, body: Buffer, le: boolean): Buffer {
  const padded = pad4(body);
  const length = padded.length + 12;
  return Buffer.concat([u32(type, le), u32(length, le), padded, u32(length, le)]);
}

export function pcapngOption(code: number, value: Buffer, le: boolean): Buffer {
  return Buffer.concat([u16(code, le), u16(value.length, le), pad4(value)]);
}

export function pcapngSection(le: boolean): Buffer {
  const body = Buffer.concat([
    u32(0x1a2b3c4d, le), // byte-order magic
    u16(1, le), // major
    u16(0, le), // minor
    Buffer.alloc(8, 0xff), // section length -1: not given
  ]);
  return pcapngBlock(0x0a0d0d0a, body, le);
}

export function pcapngInterface(
  le: boolean,
  linkType: number,
  options: Buffer[] = [],
  snaplen = 0,
): Buffer {
  const endOfOptions = options.length > 0 ? [u32(0, le)] : [];
  const body = Buffer.concat([
    u16(linkType, le),
    u16(0, le),
    u32(snaplen, le),
    ...options,
    ...endOfOptions,
  ]);
  return pcapngBlock(1, body, le);
}

export function pcapngEnhancedPacket(
  le: boolean,
  interfaceId: number,
  units: bigint,
  data: Buffer,
  originalLength = data.length,
): Buffer {
  const body = Buffer.concat([
    u32(interfaceId, le),
    u32(Number(units >> 32n), le),
    u32(Number(units & 0xffffffffn), le),
    u32(data.length, le),
    u32(originalLength, le),
    data,
  ]);
  return pcapngBlock(6, body, le);
}

export interface SeenFrame {
  linkType: number;
  bytes: string;
  originalLength: number;
  ts: number;
  interfaceId: number;
  fcsLength: number;
}

/** Feeds `file` in chunks of the given sizes (cycled) and returns copies of the frames. */
export async function readAll(
  file: Buffer,
  chunkSizes: number[] = [file.length || 1],
  options: { maxRecordBytes?: number } = {},
) {
  const chunks: Buffer[] = [];
  for (let at = 0, i = 0; at < file.length; i++) {
    const size = chunkSizes[i % chunkSizes.length]!;
    // Copy each chunk so that a parser that keeps a view past its call shows up as a failure.
    chunks.push(Buffer.from(file.subarray(at, at + size)));
    at += size;
  }
  const stats = newCaptureStats();
  const frames: SeenFrame[] = [];
  await readCapture(
    Readable.from(chunks),
    (frame: Frame) => {
      frames.push({
        linkType: frame.linkType,
        bytes: frame.data.toString('hex', frame.offset, frame.offset + frame.length),
        originalLength: frame.originalLength,
        ts: frame.ts,
        interfaceId: frame.interfaceId,
        fcsLength: frame.fcsLength,
      });
    },
    stats,
    options,
  );
  return { frames, stats };
}
