// Counts the READ or WRITE data of one command as it streams past, without keeping it, and
// looks for the DICOM Part 10 prefix 'DICM' at offset 128 of data that starts at file offset 0.
import type { Millis } from '../../engine/types.js';
import type { TailConsumer } from './framing.js';

const DICM_OFFSET = 128;
const DICM = 0x4449434d;

export interface DataCounterEvents {
  /** `bytes` data bytes passed. */
  data(bytes: number, ts: Millis): void;
  /** The data ended; `seen` bytes passed and `complete` is false if any were lost. */
  done(seen: number, complete: boolean, dicmSeen: boolean, ts: Millis): void;
}

export class DataCounter implements TailConsumer {
  private seen = 0;
  private lost = 0;
  private sniffed = 0;
  private sniff = 0;
  private finished = false;

  /**
   * @param dataOffset where the data starts, counted from the command's SMB2 header
   * @param sniffDicm true when the data starts at file offset 0
   */
  constructor(
    private readonly dataOffset: number,
    private readonly dataLength: number,
    private readonly sniffDicm: boolean,
    private readonly events: DataCounterEvents,
  ) {}

  feed(bytes: Buffer, commandOffset: number, ts: Millis): void {
    const from = Math.max(commandOffset, this.dataOffset);
    const to = Math.min(commandOffset + bytes.length, this.dataOffset + this.dataLength);
    if (to <= from) return;
    if (this.sniffDicm && this.sniffed < 4) this.sniffPrefix(bytes, commandOffset, from, to);
    this.seen += to - from;
    this.events.data(to - from, ts);
  }

  gap(length: number, _ts: Millis): void {
    this.lost += length;
  }

  end(complete: boolean, ts: Millis): void {
    if (this.finished) return;
    this.finished = true;
    const whole = complete && this.lost === 0 && this.seen === this.dataLength;
    this.events.done(this.seen, whole, this.sniffed === 4 && this.sniff === DICM, ts);
  }

  private sniffPrefix(bytes: Buffer, commandOffset: number, from: number, to: number): void {
    const want = this.dataOffset + DICM_OFFSET + this.sniffed;
    for (let at = Math.max(from, want); at < to && this.sniffed < 4; at++) {
      if (at !== this.dataOffset + DICM_OFFSET + this.sniffed) break;
      this.sniff = ((this.sniff << 8) | (bytes[at - commandOffset] as number)) >>> 0;
      this.sniffed++;
    }
  }
}
