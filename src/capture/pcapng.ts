// pcapng (draft-ietf-opsawg-pcapng): a sequence of blocks, each
//   type u32 | total length u32 | body | total length u32 (repeated)
// in the byte order set by the Section Header Block before them.

import { countWarning, emitFrame, type ParserContext, type RecordParser } from './frame.js';

export const PCAPNG_SHB_TYPE = 0x0a0d0d0a;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
const IDB_TYPE = 1;
const PB_TYPE = 2; // obsolete Packet Block
const SPB_TYPE = 3;
const NRB_TYPE = 4;
const ISB_TYPE = 5;
const EPB_TYPE = 6;
const DSB_TYPE = 0x0a;
const KNOWN_SKIPPED_TYPES = new Set([NRB_TYPE, ISB_TYPE, DSB_TYPE, 9, 0x00000bad, 0x40000bad]);

const BLOCK_HEADER_BYTES = 12; // type, length and the trailing length
const MIN_BLOCK_BYTES = new Map<number, number>([
  [PCAPNG_SHB_TYPE, 28],
  [IDB_TYPE, 20],
  [PB_TYPE, 32],
  [SPB_TYPE, 16],
  [EPB_TYPE, 32],
]);
/** Room for block headers and options around a packet of maxRecordBytes. */
const BLOCK_OVERHEAD_ALLOWANCE = 4096;
const MAX_INTERFACES = 4096;

const OPT_END = 0;
const OPT_IF_TSRESOL = 9;
const OPT_IF_FCSLEN = 13;
const OPT_IF_TSOFFSET = 14;

interface InterfaceInfo {
  linkType: number;
  snaplen: number;
  /** Timestamp units per second: 10^6 unless an if_tsresol option sets another value. */
  unitsPerSecond: number;
  tsOffsetMs: number;
  fcsLength: number;
}

export class PcapngParser implements RecordParser {
  readonly maxUnitBytes: number;
  private readonly maxBlockBytes: number;
  private littleEndian = true;
  private interfaces: InterfaceInfo[] = [];
  private resyncing = false;

  constructor(private readonly ctx: ParserContext) {
    this.maxBlockBytes = ctx.maxRecordBytes + BLOCK_OVERHEAD_ALLOWANCE;
    this.maxUnitBytes = this.maxBlockBytes;
  }

  step(buf: Buffer, start: number, end: number): number {
    if (this.resyncing) return this.resync(buf, start, end);
    return this.readBlock(buf, start, end);
  }

  finish(_buf: Buffer, start: number, end: number): void {
    if (end === start) return;
    this.ctx.stats.truncatedRecords++;
    countWarning(
      this.ctx.stats,
      this.resyncing ? 'pcapng-resync-failed' : 'pcapng-truncated-block',
    );
  }

  private u32(buf: Buffer, at: number): number {
    return this.littleEndian ? buf.readUInt32LE(at) : buf.readUInt32BE(at);
  }

  private u16(buf: Buffer, at: number): number {
    return this.littleEndian ? buf.readUInt16LE(at) : buf.readUInt16BE(at);
  }

  /**
   * Returns the block's total length when its header is valid, 0 when it is not, or -1 when
   * more bytes are needed to decide. Sets the byte order when the block is a Section Header.
   */
  private checkHeader(buf: Buffer, at: number, end: number): number {
    if (end - at < BLOCK_HEADER_BYTES) return -1;
    const type = buf.readUInt32LE(at) === PCAPNG_SHB_TYPE ? PCAPNG_SHB_TYPE : this.u32(buf, at);
    let littleEndian = this.littleEndian;
    if (type === PCAPNG_SHB_TYPE) {
      if (buf.readUInt32LE(at + 8) === BYTE_ORDER_MAGIC) littleEndian = true;
      else if (buf.readUInt32BE(at + 8) === BYTE_ORDER_MAGIC) littleEndian = false;
      else return 0;
    }
    const length = littleEndian ? buf.readUInt32LE(at + 4) : buf.readUInt32BE(at + 4);
    const minimum = MIN_BLOCK_BYTES.get(type) ?? BLOCK_HEADER_BYTES;
    if (length % 4 !== 0 || length < minimum || length > this.maxBlockBytes) return 0;
    if (end - at < length) return -1;
    const trailer = littleEndian
      ? buf.readUInt32LE(at + length - 4)
      : buf.readUInt32BE(at + length - 4);
    if (trailer !== length) return 0;
    this.littleEndian = littleEndian;
    return length;
  }

  private readBlock(buf: Buffer, start: number, end: number): number {
    const length = this.checkHeader(buf, start, end);
    if (length < 0) return this.bytesNeeded(buf, start, end);
    if (length === 0) {
      this.ctx.stats.corruptRecords++;
      countWarning(this.ctx.stats, 'pcapng-invalid-block-header');
      this.resyncing = true;
      return 1;
    }

    const type = this.u32(buf, start);
    switch (type) {
      case PCAPNG_SHB_TYPE:
        this.interfaces = [];
        if (this.u16(buf, start + 12) !== 1)
          countWarning(this.ctx.stats, 'pcapng-unexpected-version');
        break;
      case IDB_TYPE:
        this.readInterface(buf, start, length);
        break;
      case EPB_TYPE:
        this.readPacket(buf, start, length, this.u32(buf, start + 8), start + 12, start + 28);
        break;
      case PB_TYPE:
        this.readPacket(buf, start, length, this.u16(buf, start + 8), start + 12, start + 28);
        break;
      case SPB_TYPE:
        this.readSimplePacket(buf, start, length);
        break;
      default:
        this.ctx.stats.skippedBlocks++;
        if (!KNOWN_SKIPPED_TYPES.has(type)) countWarning(this.ctx.stats, 'pcapng-unknown-block');
    }
    return length;
  }

  /** Returns -n for the bytes the block at `start` needs, given that its header is incomplete. */
  private bytesNeeded(buf: Buffer, start: number, end: number): number {
    if (end - start < BLOCK_HEADER_BYTES) return -BLOCK_HEADER_BYTES;
    const isSection = buf.readUInt32LE(start) === PCAPNG_SHB_TYPE;
    let littleEndian = this.littleEndian;
    if (isSection) littleEndian = buf.readUInt32LE(start + 8) === BYTE_ORDER_MAGIC;
    return -(littleEndian ? buf.readUInt32LE(start + 4) : buf.readUInt32BE(start + 4));
  }

  private readInterface(buf: Buffer, start: number, length: number): void {
    if (this.interfaces.length >= MAX_INTERFACES) {
      countWarning(this.ctx.stats, 'pcapng-too-many-interfaces');
      return;
    }
    const info: InterfaceInfo = {
      linkType: this.u16(buf, start + 8),
      snaplen: this.u32(buf, start + 12),
      unitsPerSecond: 1_000_000,
      tsOffsetMs: 0,
      fcsLength: 0,
    };
    const optionsEnd = start + length - 4;
    let at = start + 16;
    while (at + 4 <= optionsEnd) {
      const code = this.u16(buf, at);
      const valueLength = this.u16(buf, at + 2);
      const value = at + 4;
      if (code === OPT_END) break;
      if (value + valueLength > optionsEnd) {
        countWarning(this.ctx.stats, 'pcapng-invalid-option-length');
        break;
      }
      if (code === OPT_IF_TSRESOL && valueLength >= 1) {
        const resolution = buf[value]!;
        // The high bit selects a negative power of 2, otherwise a negative power of 10.
        const exponent = resolution & 0x7f;
        info.unitsPerSecond = resolution & 0x80 ? 2 ** exponent : 10 ** exponent;
      } else if (code === OPT_IF_TSOFFSET && valueLength >= 8) {
        const seconds = this.littleEndian ? buf.readBigInt64LE(value) : buf.readBigInt64BE(value);
        info.tsOffsetMs = Number(seconds) * 1000;
      } else if (code === OPT_IF_FCSLEN && valueLength >= 1) {
        info.fcsLength = buf[value]! >>> 3; // the option is in bits
      }
      at = value + ((valueLength + 3) & ~3);
    }
    this.interfaces.push(info);
  }

  private readPacket(
    buf: Buffer,
    start: number,
    length: number,
    interfaceId: number,
    tsAt: number,
    dataAt: number,
  ): void {
    const info = this.interfaces[interfaceId];
    if (info === undefined) {
      this.ctx.stats.corruptRecords++;
      countWarning(this.ctx.stats, 'pcapng-unknown-interface');
      return;
    }
    const captured = this.u32(buf, tsAt + 8);
    if (captured > start + length - 4 - dataAt) {
      this.ctx.stats.corruptRecords++;
      countWarning(this.ctx.stats, 'pcapng-captured-length-exceeds-block');
      return;
    }
    const frame = this.ctx.frame;
    // NOTE: a double represents integers exactly only up to 2^53, so nanosecond timestamps
    // later than about 104 days after 1970 are rounded by up to a few hundred nanoseconds.
    const units = this.u32(buf, tsAt) * 4294967296 + this.u32(buf, tsAt + 4);
    frame.ts = (units / info.unitsPerSecond) * 1000 + info.tsOffsetMs;
    frame.originalLength = this.u32(buf, tsAt + 12);
    this.setFrame(info, interfaceId, buf, dataAt, captured);
  }

  private readSimplePacket(buf: Buffer, start: number, length: number): void {
    const info = this.interfaces[0];
    if (info === undefined) {
      this.ctx.stats.corruptRecords++;
      countWarning(this.ctx.stats, 'pcapng-unknown-interface');
      return;
    }
    const original = this.u32(buf, start + 8);
    let captured = Math.min(original, length - 16);
    if (info.snaplen > 0) captured = Math.min(captured, info.snaplen);
    const frame = this.ctx.frame;
    // A Simple Packet Block carries no timestamp.
    frame.ts = 0;
    frame.originalLength = original;
    this.setFrame(info, 0, buf, start + 12, captured);
  }

  private setFrame(
    info: InterfaceInfo,
    interfaceId: number,
    buf: Buffer,
    dataAt: number,
    captured: number,
  ): void {
    const frame = this.ctx.frame;
    frame.linkType = info.linkType;
    frame.fcsLength = info.fcsLength;
    frame.interfaceId = interfaceId;
    frame.data = buf;
    frame.offset = dataAt;
    frame.length = captured;
    emitFrame(this.ctx);
  }

  /** Scans for the next block whose type is known and whose two length fields agree. */
  private resync(buf: Buffer, start: number, end: number): number {
    const savedOrder = this.littleEndian;
    for (let at = start; at + BLOCK_HEADER_BYTES <= end; at++) {
      const type = buf.readUInt32LE(at) === PCAPNG_SHB_TYPE ? PCAPNG_SHB_TYPE : this.u32(buf, at);
      if (!MIN_BLOCK_BYTES.has(type) && !KNOWN_SKIPPED_TYPES.has(type)) continue;
      const length = this.checkHeader(buf, at, end);
      if (length === 0) continue;
      if (at > start) {
        this.littleEndian = savedOrder;
        return at - start;
      }
      if (length < 0) return this.bytesNeeded(buf, start, end);
      this.resyncing = false;
      countWarning(this.ctx.stats, 'pcapng-resync');
      return this.readBlock(buf, start, end);
    }
    const skip = end - start - (BLOCK_HEADER_BYTES - 1);
    return skip > 0 ? skip : -BLOCK_HEADER_BYTES;
  }
}
