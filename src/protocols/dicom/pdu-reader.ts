import { PDU_HEADER_LENGTH, PDV_HEADER_LENGTH, PduType } from './constants.js';
import type { DicomLimits } from './limits.js';

// PDU framing for one direction of an association (PS3.8 section 9.3). Bytes arrive in chunks
// of any size. Association PDUs are small and read once, so their bodies are copied into one
// buffer of their declared, limit-checked length. P-DATA-TF bodies are never kept: each PDV's
// value is passed on as views of the chunks it arrived in.
//
//   state        bytes it waits for                    next
//   header       6-byte PDU header (copied)            body | pdv-header | counting
//   body         declared length of an association PDU header
//   pdv-header   6-byte PDV item header (copied)       pdv-value | header
//   pdv-value    the PDV's value, passed through       pdv-header | header
//   resync       a plausible P-DATA-TF header          header
//   counting     nothing: sync is lost, bytes counted  (stays)

export interface PduReaderEvents {
  /** A complete association PDU (every type except P-DATA-TF) with its body. */
  pdu(type: number, body: Buffer): void;
  pdvStart(contextId: number, controlHeader: number, length: number): void;
  /** A view of PDV value bytes; it may be reused after the call returns. */
  pdvData(chunk: Buffer): void;
  pdvEnd(): void;
  /** A parse anomaly. `lostSync` is true when the reader stopped parsing this direction. */
  anomaly(name: string, details: Record<string, number>, lostSync: boolean): void;
}

type State = 'header' | 'body' | 'pdv-header' | 'pdv-value' | 'resync' | 'counting';

/** A P-DATA-TF header plus its first PDV header: the signature the resync scan looks for. */
const RESYNC_WINDOW = PDU_HEADER_LENGTH + PDV_HEADER_LENGTH;

export class PduReader {
  state: State = 'header';
  /** Bytes the reader did not parse because sync was lost or not yet found after a gap. */
  unparsedBytes = 0;
  private readonly header = Buffer.alloc(Math.max(PDU_HEADER_LENGTH, PDV_HEADER_LENGTH));
  private headerLength = 0;
  private pduType = 0;
  private body: Buffer | undefined;
  private bodyLength = 0;
  private pduRemaining = 0;
  private pdvRemaining = 0;
  /** The last bytes of the previous chunk while scanning for a PDU header after a gap. */
  private resyncCarry = Buffer.alloc(0);

  constructor(
    private readonly limits: DicomLimits,
    private readonly events: PduReaderEvents,
  ) {}

  feed(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      offset += this.step(chunk, offset);
    }
  }

  /**
   * Reports that bytes of this direction were never seen. The stream position is unknown after
   * that, so the reader scans for the next P-DATA-TF header.
   */
  gap(length: number): void {
    this.unparsedBytes += length;
    if (this.state === 'counting') {
      return;
    }
    if (this.state === 'pdv-value') {
      this.events.pdvEnd();
    }
    this.body = undefined;
    this.headerLength = 0;
    this.resyncCarry = Buffer.alloc(0);
    this.state = 'resync';
  }

  /** Consumes bytes from `chunk` at `offset` for the current state and returns how many. */
  private step(chunk: Buffer, offset: number): number {
    switch (this.state) {
      case 'header': {
        const take = this.readHeader(chunk, offset, PDU_HEADER_LENGTH);
        if (this.headerLength === PDU_HEADER_LENGTH) {
          this.headerLength = 0;
          this.onPduHeader();
        }
        return take;
      }
      case 'body':
        return this.readBody(chunk, offset);
      case 'pdv-header': {
        const take = this.readHeader(chunk, offset, PDV_HEADER_LENGTH);
        if (this.headerLength === PDV_HEADER_LENGTH) {
          this.headerLength = 0;
          this.onPdvHeader();
        }
        return take;
      }
      case 'pdv-value':
        return this.readPdvValue(chunk, offset);
      case 'resync':
        return this.scan(chunk, offset);
      case 'counting':
        this.unparsedBytes += chunk.length - offset;
        return chunk.length - offset;
    }
  }

  /**
   * Copies up to `size` header bytes, which may straddle chunks, and returns how many. The
   * caller decodes the header once `headerLength` reaches `size`. A byte loop costs less than
   * Buffer.copy's argument checks for six bytes, and this runs twice per PDU.
   */
  private readHeader(chunk: Buffer, offset: number, size: number): number {
    const take = Math.min(size - this.headerLength, chunk.length - offset);
    const header = this.header;
    for (let index = 0; index < take; index++) {
      header[this.headerLength + index] = chunk[offset + index]!;
    }
    this.headerLength += take;
    return take;
  }

  /** PDU header, PS3.8 section 9.3.1: type u8 | reserved u8 | length u32 big-endian. */
  private onPduHeader(): void {
    const type = this.header.readUInt8(0);
    const length = this.header.readUInt32BE(2);
    if (type < PduType.AssociateRq || type > PduType.Abort) {
      this.loseSync('dicom.unknown_pdu_type', { type, length });
      return;
    }
    if (length > this.limits.maxPduLength) {
      this.loseSync('dicom.pdu_too_large', { type, length, limit: this.limits.maxPduLength });
      return;
    }
    this.pduType = type;
    if (type === PduType.PDataTf) {
      if (length < PDV_HEADER_LENGTH) {
        this.loseSync('dicom.bad_item', { type, length, minimum: PDV_HEADER_LENGTH });
        return;
      }
      this.pduRemaining = length;
      this.state = 'pdv-header';
      return;
    }
    if (length > this.limits.maxAssociateItemsBytes) {
      this.loseSync('dicom.associate_too_large', {
        type,
        length,
        limit: this.limits.maxAssociateItemsBytes,
      });
      return;
    }
    // The length is checked against its limit above, before this allocation.
    this.body = Buffer.alloc(length);
    this.bodyLength = 0;
    if (length === 0) {
      this.finishBody();
      return;
    }
    this.state = 'body';
  }

  private readBody(chunk: Buffer, offset: number): number {
    const body = this.body!;
    const take = Math.min(body.length - this.bodyLength, chunk.length - offset);
    chunk.copy(body, this.bodyLength, offset, offset + take);
    this.bodyLength += take;
    if (this.bodyLength === body.length) {
      this.finishBody();
    }
    return take;
  }

  private finishBody(): void {
    const body = this.body!;
    this.body = undefined;
    this.state = 'header';
    this.events.pdu(this.pduType, body);
  }

  /**
   * PDV item, PS3.8 section 9.3.5.1: length u32 big-endian | presentation-context-id u8 |
   * message control header u8 | fragment. The length counts the last two fields too.
   */
  private onPdvHeader(): void {
    const length = this.header.readUInt32BE(0);
    const contextId = this.header.readUInt8(4);
    const controlHeader = this.header.readUInt8(5);
    const available = this.pduRemaining - 4;
    if (length < 2 || length > available) {
      this.loseSync('dicom.bad_item', { length, available });
      return;
    }
    this.pduRemaining -= PDV_HEADER_LENGTH;
    this.pdvRemaining = length - 2;
    this.events.pdvStart(contextId, controlHeader, this.pdvRemaining);
    if (this.pdvRemaining === 0) {
      this.endPdv();
      return;
    }
    this.state = 'pdv-value';
  }

  private readPdvValue(chunk: Buffer, offset: number): number {
    const take = Math.min(this.pdvRemaining, chunk.length - offset);
    this.pdvRemaining -= take;
    this.pduRemaining -= take;
    this.events.pdvData(chunk.subarray(offset, offset + take));
    if (this.pdvRemaining === 0) {
      this.endPdv();
    }
    return take;
  }

  private endPdv(): void {
    this.events.pdvEnd();
    this.state = this.pduRemaining === 0 ? 'header' : 'pdv-header';
  }

  /**
   * Scans for a P-DATA-TF header followed by a sane PDV header. Up to RESYNC_WINDOW - 1 bytes
   * of the previous chunk are kept so a header that straddles two chunks is still found.
   */
  private scan(chunk: Buffer, offset: number): number {
    const carry = this.resyncCarry;
    const rest = chunk.subarray(offset);
    const total = carry.length + rest.length;
    const byteAt = (index: number): number =>
      index < carry.length ? carry[index]! : rest[index - carry.length]!;

    for (let start = 0; start + RESYNC_WINDOW <= total; start++) {
      if (this.isPlausiblePDataHeader(byteAt, start)) {
        this.unparsedBytes += start;
        this.resyncCarry = Buffer.alloc(0);
        this.state = 'header';
        if (start < carry.length) {
          this.feed(carry.subarray(start));
          this.feed(rest);
        } else {
          this.feed(rest.subarray(start - carry.length));
        }
        return rest.length;
      }
    }

    const keep = Math.min(RESYNC_WINDOW - 1, total);
    const kept = Buffer.alloc(keep);
    for (let index = 0; index < keep; index++) {
      kept[index] = byteAt(total - keep + index);
    }
    // Carried bytes are counted when they are finally dropped or parsed, not twice.
    this.unparsedBytes += total - keep;
    this.resyncCarry = kept;
    return rest.length;
  }

  private isPlausiblePDataHeader(byteAt: (index: number) => number, start: number): boolean {
    if (byteAt(start) !== PduType.PDataTf || byteAt(start + 1) !== 0) {
      return false;
    }
    const pduLength = readUInt32At(byteAt, start + 2);
    const pdvLength = readUInt32At(byteAt, start + 6);
    const contextId = byteAt(start + 10);
    const controlHeader = byteAt(start + 11);
    return (
      pduLength >= PDV_HEADER_LENGTH &&
      pduLength <= this.limits.maxPduLength &&
      pdvLength >= 2 &&
      pdvLength <= pduLength - 4 &&
      contextId % 2 === 1 &&
      controlHeader <= 3
    );
  }

  private loseSync(name: string, details: Record<string, number>): void {
    if (this.state === 'pdv-value') {
      this.events.pdvEnd();
    }
    this.state = 'counting';
    this.body = undefined;
    this.events.anomaly(name, details, true);
  }
}

function readUInt32At(byteAt: (index: number) => number, start: number): number {
  return (
    (byteAt(start) * 0x1000000 +
      (byteAt(start + 1) << 16) +
      (byteAt(start + 2) << 8) +
      byteAt(start + 3)) >>>
    0
  );
}
