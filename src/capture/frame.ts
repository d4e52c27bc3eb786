// Types shared by the capture file parsers (pcap, pcapng) and the chunk driver in reader.ts.

export interface CaptureStats {
  /** Packet records delivered to onFrame. */
  packets: number;
  /** Captured packet bytes delivered to onFrame (record headers not included). */
  bytes: number;
  /** Records or blocks cut short by the end of input. */
  truncatedRecords: number;
  /** Records or blocks with an implausible header, skipped. */
  corruptRecords: number;
  /** pcapng blocks read past without use (statistics, name resolution, custom, unknown). */
  skippedBlocks: number;
  /** Warning code -> count. */
  warnings: Map<string, number>;
}

/** One packet record. The reader reuses one Frame object, so copy what must outlive onFrame. */
export interface Frame {
  /** LINKTYPE_ value from the file header or the pcapng Interface Description Block. */
  linkType: number;
  data: Buffer;
  offset: number;
  /** Captured bytes at data[offset, offset + length). */
  length: number;
  /** Length of the packet on the wire. */
  originalLength: number;
  /** Milliseconds since the Unix epoch, fractional for microsecond and nanosecond resolution. */
  ts: number;
  interfaceId: number;
  /** Bytes of Frame Check Sequence at the end of each packet on the wire (0 when none). */
  fcsLength: number;
}

export function newCaptureStats(): CaptureStats {
  return {
    packets: 0,
    bytes: 0,
    truncatedRecords: 0,
    corruptRecords: 0,
    skippedBlocks: 0,
    warnings: new Map(),
  };
}

export function countWarning(stats: CaptureStats, code: string): void {
  stats.warnings.set(code, (stats.warnings.get(code) ?? 0) + 1);
}

/** Raised for input that is not a capture file this reader understands. */
export class CaptureFormatError extends Error {
  readonly code = 'CAPTURE_FORMAT';
  constructor(message: string) {
    super(message);
    this.name = 'CaptureFormatError';
  }
}

/**
 * A parser for one capture format, driven over chunks by reader.ts.
 * `step` handles one unit (file header, record, block or resync skip) starting at `start`:
 * it returns the bytes consumed (> 0), or -n when it needs n bytes from `start` and fewer
 * than n are available. n never exceeds `maxUnitBytes`.
 */
export interface RecordParser {
  readonly maxUnitBytes: number;
  step(buf: Buffer, start: number, end: number): number;
  /** Handles the bytes left unconsumed at the end of input. */
  finish(buf: Buffer, start: number, end: number): void;
}

/** Shared state passed to the format parsers. */
export interface ParserContext {
  frame: Frame;
  onFrame: (frame: Frame) => void;
  stats: CaptureStats;
  maxRecordBytes: number;
}

export function emitFrame(ctx: ParserContext): void {
  ctx.stats.packets++;
  ctx.stats.bytes += ctx.frame.length;
  ctx.onFrame(ctx.frame);
}
