// NetBIOS session service framing (RFC 1002 4.3, MS-SMB2 2.1 Direct TCP) and the split of each
// message into SMB2 commands (MS-SMB2 3.2.4.1.4 compounding), for one direction of a flow.
//
// A message is a 4-byte header (type 0x00, 24-bit big-endian length) and `length` bytes. Its
// commands follow one another, each starting with a 64-byte SMB2 header whose NextCommand gives
// the offset of the next one (0 for the last). READ responses, WRITE requests and QUERY_DIRECTORY
// responses are buffered only up to their fixed part, and the rest (data, directory entries)
// streams to a consumer that does not keep it. Other commands are buffered whole up to
// maxBufferedCommand, else only their header and first 64 body bytes:
//
//   | NB hdr | SMB2 hdr | fixed | ...... data streamed past ...... | SMB2 hdr | ... |
//            ^-- head handed to the sink --^
//
// After a malformed header or a gap it cannot skip, the framer scans for the next
// 00 <len:3> 0xFE 'SMB' and resumes there.

import type { Millis, Side } from '../../engine/types.js';
import { SmbAnomaly, type SmbAnomalyName } from './anomalies.js';
import { QUERY_DIRECTORY_RESPONSE_FIXED_LENGTH } from './commands/query-directory.js';
import { READ_RESPONSE_FIXED_LENGTH } from './commands/read.js';
import { WRITE_REQUEST_FIXED_LENGTH } from './commands/write.js';
import {
  Command,
  decodeSmb2Header,
  hasProtocolId,
  SMB2_HEADER_LENGTH,
  type Smb2Header,
} from './header.js';
import type { SmbLimits } from './limits.js';

const NETBIOS_HEADER_LENGTH = 4;
const NETBIOS_SESSION_MESSAGE = 0x00;
const TRANSFORM_HEADER_LENGTH = 52;
const SMB2_MAGIC = 0xfe;
const TRANSFORM_MAGIC = 0xfd;
const COMPRESSION_MAGIC = 0xfc;
const SMB1_MAGIC = 0xff;
/** Body bytes kept from other commands too large to buffer; such commands are counted, not decoded. */
const GENERIC_FIXED_LENGTH = 64;
const RESYNC_MARKER = Buffer.from([SMB2_MAGIC, 0x53, 0x4d, 0x42]);

/** Receives the bytes of one command beyond its head, as they pass. */
export interface TailConsumer {
  /** `bytes` start at `commandOffset`, counted from the command's SMB2 header. */
  feed(bytes: Buffer, commandOffset: number, ts: Millis): void;
  /** `length` bytes of the command were lost to a gap in the capture. */
  gap(length: number, ts: Millis): void;
  /** The command is over; `complete` is false when the rest of it was lost. */
  end(complete: boolean, ts: Millis): void;
}

export interface FramingSink {
  /** A whole NetBIOS message (header included) sent by `side`, attributed to a session. */
  messageBytes(side: Side, sessionId: bigint, length: number, ts: Millis): void;
  /**
   * One SMB2 command. `head` is the whole command when its length equals `commandLength`,
   * else the header and fixed part; it is a view valid only during the call.
   */
  command(
    side: Side,
    header: Smb2Header,
    head: Buffer,
    commandLength: number,
    chainIndex: number,
    ts: Millis,
  ): TailConsumer | null;
  transform(side: Side, sessionId: bigint, ts: Millis): void;
  smb1(side: Side, ts: Millis): void;
  anomaly(name: SmbAnomalyName, ts: Millis, details: Record<string, string | number>): void;
}

type State = 'netbios' | 'header' | 'head' | 'tail' | 'skip' | 'resync';

/** Frames the byte stream sent by one side. */
export class SmbFramer {
  private state: State = 'netbios';
  private readonly netbiosHeader = Buffer.alloc(NETBIOS_HEADER_LENGTH);
  private readonly headerBuffer = Buffer.alloc(SMB2_HEADER_LENGTH);
  /** The head of the current command: header, fixed part and, for small commands, the rest. */
  private collected: Buffer = this.headerBuffer;
  private collectedBytes = 0;
  private want = 0;

  private messageLength = 0;
  /** Bytes of the current NetBIOS message not consumed yet. */
  private messageLeft = 0;
  private chainIndex = 0;
  private header: Smb2Header | null = null;
  private commandLength = 0;
  private commandConsumed = 0;
  private chainContinues = false;
  private tail: TailConsumer | null = null;
  private resyncCarry: Buffer = Buffer.alloc(0);

  constructor(
    private readonly side: Side,
    private readonly limits: SmbLimits,
    private readonly sink: FramingSink,
  ) {}

  data(chunk: Buffer, ts: Millis): void {
    let position = 0;
    while (position < chunk.length) {
      position = this.step(chunk, position, ts);
    }
  }

  gap(length: number, ts: Millis): void {
    const commandLeft = this.commandLength - this.commandConsumed;
    if (this.state === 'tail' && length <= commandLeft) {
      this.sink.anomaly(SmbAnomaly.gap, ts, { side: this.side, length, resync: 0 });
      this.tail?.gap(length, ts);
      this.commandConsumed += length;
      this.messageLeft -= length;
      if (this.commandConsumed === this.commandLength) this.finishCommand(true, ts);
      return;
    }
    if (this.state === 'skip' && length <= this.messageLeft) {
      this.sink.anomaly(SmbAnomaly.gap, ts, { side: this.side, length, resync: 0 });
      this.messageLeft -= length;
      if (this.messageLeft === 0) this.state = 'netbios';
      return;
    }
    this.sink.anomaly(SmbAnomaly.gap, ts, { side: this.side, length, resync: 1 });
    this.loseSync(ts);
  }

  /** Ends a command still in progress when the flow ends. */
  end(ts: Millis): void {
    if (this.tail !== null) {
      this.tail.end(false, ts);
      this.tail = null;
    }
  }

  private step(chunk: Buffer, position: number, ts: Millis): number {
    switch (this.state) {
      case 'netbios':
        return this.readNetbiosHeader(chunk, position, ts);
      case 'header':
        return this.readSmbHeader(chunk, position, ts);
      case 'head':
        return this.readHead(chunk, position, ts);
      case 'tail':
        return this.readTail(chunk, position, ts);
      case 'skip': {
        const take = Math.min(this.messageLeft, chunk.length - position);
        this.messageLeft -= take;
        if (this.messageLeft === 0) this.state = 'netbios';
        return position + take;
      }
      case 'resync':
        return this.scanForHeader(chunk, position, ts);
    }
  }

  private readNetbiosHeader(chunk: Buffer, position: number, ts: Millis): number {
    const take = Math.min(NETBIOS_HEADER_LENGTH - this.collectedBytes, chunk.length - position);
    chunk.copy(this.netbiosHeader, this.collectedBytes, position, position + take);
    this.collectedBytes += take;
    if (this.collectedBytes < NETBIOS_HEADER_LENGTH) return position + take;
    this.collectedBytes = 0;

    const type = this.netbiosHeader[0] as number;
    const length = this.netbiosHeader.readUIntBE(1, 3);
    this.messageLength = length;
    this.messageLeft = length;
    if (type !== NETBIOS_SESSION_MESSAGE) {
      // Session request, positive or negative response, retarget, keepalive (0x81-0x85 on port 139).
      if (type >= 0x81 && type <= 0x85) {
        this.sink.messageBytes(this.side, 0n, length + NETBIOS_HEADER_LENGTH, ts);
        this.state = length === 0 ? 'netbios' : 'skip';
        return position + take;
      }
      this.sink.anomaly(SmbAnomaly.badNetbiosLength, ts, { type, length });
      this.loseSync(ts);
      return position + take;
    }
    if (length < 4 || length > this.limits.maxMessageLength) {
      this.sink.anomaly(SmbAnomaly.badNetbiosLength, ts, {
        length,
        maximum: this.limits.maxMessageLength,
      });
      this.loseSync(ts);
      return position + take;
    }
    this.chainIndex = 0;
    this.startHeader(4);
    return position + take;
  }

  private startHeader(want: number): void {
    this.state = 'header';
    this.collectedBytes = 0;
    this.want = want;
  }

  /**
   * Copies the record's header into `headerBuffer`: first the 4-byte ProtocolId, which decides
   * the record, then the rest of the SMB2 (64 bytes) or transform (52 bytes) header.
   */
  private readSmbHeader(chunk: Buffer, position: number, ts: Millis): number {
    const take = Math.min(this.want - this.collectedBytes, chunk.length - position);
    chunk.copy(this.headerBuffer, this.collectedBytes, position, position + take);
    this.collectedBytes += take;
    this.messageLeft -= take;
    if (this.collectedBytes < this.want) return position + take;
    if (this.want === 4) {
      this.chooseRecord(ts);
      return position + take;
    }
    const bytes = this.headerBuffer.subarray(0, this.want);
    if (bytes[0] === TRANSFORM_MAGIC) {
      const sessionId = bytes.readBigUInt64LE(44);
      this.sink.messageBytes(this.side, sessionId, this.messageLength + NETBIOS_HEADER_LENGTH, ts);
      this.sink.transform(this.side, sessionId, ts);
      this.skipMessage();
      return position + take;
    }
    this.startCommand(bytes, ts);
    return position + take;
  }

  private chooseRecord(ts: Millis): void {
    const first = this.chainIndex === 0;
    const magic = this.headerBuffer;
    const kind = magic[0] as number;
    const isSmb = magic[1] === 0x53 && magic[2] === 0x4d && magic[3] === 0x42;
    const recordLeft = this.messageLeft + 4;
    if (isSmb && kind === SMB2_MAGIC && recordLeft >= SMB2_HEADER_LENGTH) {
      this.want = SMB2_HEADER_LENGTH;
      return;
    }
    if (isSmb && first && kind === TRANSFORM_MAGIC && recordLeft >= TRANSFORM_HEADER_LENGTH) {
      this.want = TRANSFORM_HEADER_LENGTH;
      return;
    }
    if (isSmb && first && (kind === SMB1_MAGIC || kind === COMPRESSION_MAGIC)) {
      this.sink.messageBytes(this.side, 0n, this.messageLength + NETBIOS_HEADER_LENGTH, ts);
      if (kind === SMB1_MAGIC) this.sink.smb1(this.side, ts);
      else this.sink.anomaly(SmbAnomaly.compressed, ts, { length: this.messageLength });
      this.skipMessage();
      return;
    }
    if (isSmb && (kind === SMB2_MAGIC || kind === TRANSFORM_MAGIC)) {
      this.sink.anomaly(SmbAnomaly.lengthBeyondMessage, ts, { protocolId: kind, recordLeft });
      this.skipMessage();
      return;
    }
    this.sink.anomaly(SmbAnomaly.badProtocolId, ts, {
      protocolId: magic.readUInt32BE(0),
      chainIndex: this.chainIndex,
    });
    if (first) {
      this.loseSync(ts);
      return;
    }
    this.skipMessage();
  }

  private skipMessage(): void {
    this.collectedBytes = 0;
    this.state = this.messageLeft === 0 ? 'netbios' : 'skip';
  }

  private startCommand(headerBytes: Buffer, ts: Millis): void {
    const header = decodeSmb2Header(headerBytes, 0);
    const commandStartLeft = this.messageLeft + SMB2_HEADER_LENGTH;
    if (this.chainIndex === 0) {
      this.sink.messageBytes(
        this.side,
        header.sessionId,
        this.messageLength + NETBIOS_HEADER_LENGTH,
        ts,
      );
    }
    let commandLength = commandStartLeft;
    this.chainContinues = false;
    if (header.nextCommand !== 0) {
      const next = header.nextCommand;
      if (next < SMB2_HEADER_LENGTH || next % 8 !== 0 || next >= commandStartLeft) {
        this.sink.anomaly(SmbAnomaly.badNextCommand, ts, {
          nextCommand: next,
          messageLeft: commandStartLeft,
        });
      } else {
        commandLength = next;
        this.chainContinues = true;
      }
    }
    this.header = header;
    this.commandLength = commandLength;
    this.commandConsumed = SMB2_HEADER_LENGTH;

    // Data-carrying commands always stream, so their data is never copied and a gap inside the
    // data keeps sync. Other commands are buffered whole when small enough to decode.
    const fixed = streamedFixedLength(header);
    const headLength =
      fixed === null && commandLength <= this.limits.maxBufferedCommand
        ? commandLength
        : Math.min(commandLength, SMB2_HEADER_LENGTH + (fixed ?? GENERIC_FIXED_LENGTH));
    if (headLength === SMB2_HEADER_LENGTH) {
      this.dispatch(headerBytes, ts);
      return;
    }
    this.state = 'head';
    this.collected = Buffer.allocUnsafe(headLength);
    headerBytes.copy(this.collected, 0, 0, SMB2_HEADER_LENGTH);
    this.collectedBytes = SMB2_HEADER_LENGTH;
    this.want = headLength;
  }

  private readHead(chunk: Buffer, position: number, ts: Millis): number {
    const take = Math.min(this.want - this.collectedBytes, chunk.length - position);
    chunk.copy(this.collected, this.collectedBytes, position, position + take);
    this.collectedBytes += take;
    this.messageLeft -= take;
    this.commandConsumed += take;
    if (this.collectedBytes === this.want) this.dispatch(this.collected, ts);
    return position + take;
  }

  private dispatch(head: Buffer, ts: Millis): void {
    const header = this.header as Smb2Header;
    this.tail = this.sink.command(this.side, header, head, this.commandLength, this.chainIndex, ts);
    if (this.commandConsumed === this.commandLength) {
      this.finishCommand(true, ts);
      return;
    }
    this.state = 'tail';
  }

  private readTail(chunk: Buffer, position: number, ts: Millis): number {
    const take = Math.min(this.commandLength - this.commandConsumed, chunk.length - position);
    this.tail?.feed(chunk.subarray(position, position + take), this.commandConsumed, ts);
    this.commandConsumed += take;
    this.messageLeft -= take;
    if (this.commandConsumed === this.commandLength) this.finishCommand(true, ts);
    return position + take;
  }

  private finishCommand(complete: boolean, ts: Millis): void {
    this.tail?.end(complete, ts);
    this.tail = null;
    this.header = null;
    if (this.chainContinues && this.messageLeft > 0) {
      this.chainIndex++;
      this.startHeader(4);
      return;
    }
    this.skipMessage();
  }

  private loseSync(ts: Millis): void {
    if (this.tail !== null) {
      this.tail.end(false, ts);
      this.tail = null;
    }
    this.header = null;
    this.state = 'resync';
    this.collectedBytes = 0;
    this.resyncCarry = Buffer.alloc(0);
  }

  /**
   * Scans for 00 <len:3> 0xFE 'SMB' with a plausible length. The last 7 bytes of each chunk are
   * carried over so a marker split across chunks is found.
   */
  private scanForHeader(chunk: Buffer, position: number, ts: Millis): number {
    const carry = this.resyncCarry;
    if (carry.length > 0) {
      const window = Buffer.concat([carry, chunk.subarray(position, position + 7)]);
      for (let at = 0; at < carry.length; at++) {
        if (this.isPlausibleStart(window, at)) {
          this.resume(ts);
          this.data(window.subarray(at, carry.length), ts);
          return position;
        }
      }
    }
    let from = position;
    for (;;) {
      const marker = chunk.indexOf(RESYNC_MARKER, from + 4);
      if (marker < 0) break;
      if (this.isPlausibleStart(chunk, marker - 4)) {
        this.resume(ts);
        return marker - 4;
      }
      from = marker - 3;
    }
    const keep = Math.min(7, chunk.length - position);
    const tail = chunk.subarray(chunk.length - keep);
    this.resyncCarry = Buffer.from(Buffer.concat([carry, tail]).subarray(-7));
    return chunk.length;
  }

  private isPlausibleStart(bytes: Buffer, at: number): boolean {
    if (at < 0 || at + 8 > bytes.length || bytes[at] !== NETBIOS_SESSION_MESSAGE) return false;
    if (!hasProtocolId(bytes, at + 4, SMB2_MAGIC)) return false;
    const length = bytes.readUIntBE(at + 1, 3);
    return length >= SMB2_HEADER_LENGTH && length <= this.limits.maxMessageLength;
  }

  private resume(ts: Millis): void {
    this.sink.anomaly(SmbAnomaly.resynced, ts, { side: this.side });
    this.state = 'netbios';
    this.collectedBytes = 0;
    this.resyncCarry = Buffer.alloc(0);
  }
}

/** Returns the fixed part of a command whose remainder streams (READ/WRITE data, directory entries), else null. */
function streamedFixedLength(header: Smb2Header): number | null {
  if (header.command === Command.read && header.isResponse) return READ_RESPONSE_FIXED_LENGTH;
  if (header.command === Command.write && !header.isResponse) return WRITE_REQUEST_FIXED_LENGTH;
  if (header.command === Command.queryDirectory && header.isResponse)
    return QUERY_DIRECTORY_RESPONSE_FIXED_LENGTH;
  return null;
}
