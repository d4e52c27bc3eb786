// Classic libpcap file format (draft-ietf-opsawg-pcap): a 24-byte file header, then records of
// a 16-byte header followed by the captured bytes.
//
//   file header: magic u32 | major u16 | minor u16 | reserved u32 | reserved u32 | snaplen u32
//                | FCS:4 f:1 reserved:11 linktype:16 (u32)
//   record:      ts_sec u32 | ts_frac u32 (us or ns) | captured u32 | original u32 | data

import {
  CaptureFormatError,
  countWarning,
  emitFrame,
  type ParserContext,
  type RecordParser,
} from './frame.js';

const FILE_HEADER_BYTES = 24;
const RECORD_HEADER_BYTES = 16;
/** A resync candidate's timestamp must lie within this many seconds of the last good record. */
const RESYNC_MAX_TIME_JUMP_S = 86_400;

export const PCAP_MAGIC_US = 0xa1b2c3d4;
export const PCAP_MAGIC_NS = 0xa1b23c4d;

export class PcapParser implements RecordParser {
  readonly maxUnitBytes: number;
  private haveHeader = false;
  private littleEndian = false;
  private fracPerMs = 1000;
  private fracLimit = 1_000_000;
  private snaplen = 0;
  private resyncing = false;
  private lastTsSec = -1;

  constructor(private readonly ctx: ParserContext) {
    // A resync candidate is checked together with the header of the record after it.
    this.maxUnitBytes = ctx.maxRecordBytes + 2 * RECORD_HEADER_BYTES;
  }

  step(buf: Buffer, start: number, end: number): number {
    if (!this.haveHeader) return this.readFileHeader(buf, start, end);
    if (this.resyncing) return this.resync(buf, start, end);
    return this.readRecord(buf, start, end);
  }

  finish(_buf: Buffer, start: number, end: number): void {
    if (!this.haveHeader) {
      throw new CaptureFormatError(
        `pcap file header is truncated: ${end - start} of ${FILE_HEADER_BYTES} bytes present`,
      );
    }
    if (end > start) {
      this.ctx.stats.truncatedRecords++;
      countWarning(this.ctx.stats, this.resyncing ? 'pcap-resync-failed' : 'pcap-truncated-record');
    }
  }

  private u32(buf: Buffer, at: number): number {
    return this.littleEndian ? buf.readUInt32LE(at) : buf.readUInt32BE(at);
  }

  private readFileHeader(buf: Buffer, start: number, end: number): number {
    if (end - start < FILE_HEADER_BYTES) return -FILE_HEADER_BYTES;
    const magicBE = buf.readUInt32BE(start);
    const magicLE = buf.readUInt32LE(start);
    if (magicBE === PCAP_MAGIC_US || magicBE === PCAP_MAGIC_NS) {
      this.littleEndian = false;
    } else if (magicLE === PCAP_MAGIC_US || magicLE === PCAP_MAGIC_NS) {
      this.littleEndian = true;
    } else {
      throw new CaptureFormatError(`unknown pcap magic 0x${magicBE.toString(16).padStart(8, '0')}`);
    }
    const nanosecond = (this.littleEndian ? magicLE : magicBE) === PCAP_MAGIC_NS;
    this.fracPerMs = nanosecond ? 1_000_000 : 1000;
    this.fracLimit = nanosecond ? 1_000_000_000 : 1_000_000;

    const major = this.littleEndian ? buf.readUInt16LE(start + 4) : buf.readUInt16BE(start + 4);
    if (major !== 2) countWarning(this.ctx.stats, 'pcap-unexpected-version');
    this.snaplen = this.u32(buf, start + 16);
    const linkField = this.u32(buf, start + 20);
    this.ctx.frame.linkType = linkField & 0xffff;
    // Bit 26 marks the FCS field as valid, and bits 28-31 give the FCS length in 16-bit words.
    this.ctx.frame.fcsLength = linkField & 0x04000000 ? ((linkField >>> 28) & 0xf) * 2 : 0;
    this.ctx.frame.interfaceId = 0;
    this.haveHeader = true;
    return FILE_HEADER_BYTES;
  }

  /** Checks a record header for values no writer produces. */
  private plausible(buf: Buffer, at: number): boolean {
    const tsSec = this.u32(buf, at);
    const frac = this.u32(buf, at + 4);
    const captured = this.u32(buf, at + 8);
    const original = this.u32(buf, at + 12);
    if (frac >= this.fracLimit) return false;
    if (captured > this.ctx.maxRecordBytes) return false;
    if (this.resyncing) {
      if (original < captured) return false;
      if (this.snaplen > 0 && captured > this.snaplen) return false;
      if (this.lastTsSec >= 0 && Math.abs(tsSec - this.lastTsSec) > RESYNC_MAX_TIME_JUMP_S) {
        return false;
      }
    }
    return true;
  }

  private readRecord(buf: Buffer, start: number, end: number): number {
    if (end - start < RECORD_HEADER_BYTES) return -RECORD_HEADER_BYTES;
    if (!this.plausible(buf, start)) {
      this.ctx.stats.corruptRecords++;
      countWarning(this.ctx.stats, 'pcap-implausible-record-header');
      this.resyncing = true;
      return 1;
    }
    const captured = this.u32(buf, start + 8);
    const total = RECORD_HEADER_BYTES + captured;
    if (end - start < total) return -total;

    const tsSec = this.u32(buf, start);
    const frame = this.ctx.frame;
    frame.ts = tsSec * 1000 + this.u32(buf, start + 4) / this.fracPerMs;
    frame.originalLength = this.u32(buf, start + 12);
    frame.data = buf;
    frame.offset = start + RECORD_HEADER_BYTES;
    frame.length = captured;
    if (frame.originalLength < captured) {
      countWarning(this.ctx.stats, 'pcap-original-length-below-captured');
    }
    this.lastTsSec = tsSec;
    emitFrame(this.ctx);
    return total;
  }

  /**
   * Scans for a record header that is plausible and followed by another plausible header
   * (or by the end of the data seen so far, which is checked again when more arrives).
   */
  private resync(buf: Buffer, start: number, end: number): number {
    for (let at = start; at + RECORD_HEADER_BYTES <= end; at++) {
      if (!this.plausible(buf, at)) continue;
      const next = at + RECORD_HEADER_BYTES + this.u32(buf, at + 8);
      if (next + RECORD_HEADER_BYTES > end) {
        if (at > start) return at - start;
        return -(next + RECORD_HEADER_BYTES - start);
      }
      if (!this.plausible(buf, next)) continue;
      if (at > start) return at - start;
      this.resyncing = false;
      countWarning(this.ctx.stats, 'pcap-resync');
      return this.readRecord(buf, start, end);
    }
    const skip = end - start - (RECORD_HEADER_BYTES - 1);
    return skip > 0 ? skip : -RECORD_HEADER_BYTES;
  }
}
