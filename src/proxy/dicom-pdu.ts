// The DICOM Upper Layer PDUs the gateway sends itself (PS3.8 section 9.3), and a tracker of PDU
// boundaries in a relayed byte stream, so that an A-ABORT is only sent where a PDU may start.

import type { Verdict } from '../engine/front-end.js';
import { PDU_HEADER_LENGTH, PduType } from '../protocols/dicom/constants.js';

/** A-ABORT source 2: the service provider (the gateway) aborted. PS3.8 section 9.3.8. */
const ABORT_SOURCE_PROVIDER = 2;
/** A-ASSOCIATE-RJ result 1 (rejected-permanent), source 1 (service-user). PS3.8 section 9.3.4. */
const REJECT_PERMANENT = 1;
const REJECT_SOURCE_USER = 1;

/** Reject reasons for source 1: no reason given, calling AE or called AE title not recognized. */
export const RejectReason = {
  NoReasonGiven: 1,
  CallingAeNotRecognized: 3,
  CalledAeNotRecognized: 7,
} as const;

/** Builds an A-ABORT PDU from the service provider with reason 0 (reason not specified). */
export function abortPdu(): Buffer {
  // type, reserved, length 4, reserved, reserved, source, reason
  return Buffer.from([PduType.Abort, 0, 0, 0, 0, 4, 0, 0, ABORT_SOURCE_PROVIDER, 0]);
}

/**
 * A-ASSOCIATE-RJ result 2 (rejected-transient); source 3 (service provider, presentation
 * related function) with its reason 1 (temporary congestion). PS3.8 section 9.3.4.
 */
const REJECT_TRANSIENT = 2;
const REJECT_SOURCE_PRESENTATION = 3;
const REJECT_REASON_CONGESTION = 1;

/**
 * Builds an A-ASSOCIATE-RJ PDU from the service user for `reason`: rejected-permanent, or
 * rejected-transient (result 2) when the requester may succeed later.
 */
export function associateRejectPdu(reason: number, transient = false): Buffer {
  return rejectPdu(transient ? REJECT_TRANSIENT : REJECT_PERMANENT, REJECT_SOURCE_USER, reason);
}

/** Alerts of rules whose block lifts once the remote's meter falls back under the threshold. */
const METER_ACTIONS = new Set(['egress-threshold-exceeded', 'bulk-dicom-egress', 'bulk-file-copy']);

/**
 * Builds the A-ASSOCIATE-RJ for a refusal: transient when a meter over its threshold refused
 * the remote, since that lifts within the rule's window, and permanent otherwise.
 */
export function associateRejectFor(verdict: Verdict | undefined): Buffer {
  const transient = verdict !== undefined && METER_ACTIONS.has(verdict.eventAction);
  return associateRejectPdu(RejectReason.NoReasonGiven, transient);
}

/** Builds an A-ASSOCIATE-RJ PDU for an upstream that cannot be reached: try again later. */
export function associateRejectTransientPdu(): Buffer {
  return rejectPdu(REJECT_TRANSIENT, REJECT_SOURCE_PRESENTATION, REJECT_REASON_CONGESTION);
}

function rejectPdu(result: number, source: number, reason: number): Buffer {
  // type, reserved, length 4, reserved, result, source, reason
  return Buffer.from([PduType.AssociateRj, 0, 0, 0, 0, 4, 0, result, source, reason]);
}

/**
 * Follows PDU framing in one direction of a relayed stream: 6-byte headers with a big-endian
 * 32-bit length, then that many bytes. Keeps at most the 6 header bytes of a straddling header.
 */
export class PduBoundaryTracker {
  /** Bytes of the current PDU body still to come; 0 at a boundary or inside a header. */
  private bodyRemaining = 0;
  private readonly header = Buffer.alloc(PDU_HEADER_LENGTH);
  private headerFilled = 0;
  /** Type of the first PDU of the stream, or -1 before its first byte. */
  firstPduType = -1;

  /** True when the bytes fed so far end exactly at a PDU boundary. */
  get atBoundary(): boolean {
    return this.bodyRemaining === 0 && this.headerFilled === 0;
  }

  /**
   * Returns how many leading bytes of `chunk` end the current PDU (0 at a boundary), or -1
   * when the current PDU does not end within `chunk`. Does not feed the bytes.
   */
  bytesToBoundary(chunk: Buffer): number {
    if (this.atBoundary) return 0;
    if (this.headerFilled === 0)
      return this.bodyRemaining <= chunk.length ? this.bodyRemaining : -1;

    // Inside a header: its length field may be partly in `chunk`.
    const headerRest = PDU_HEADER_LENGTH - this.headerFilled;
    if (chunk.length < headerRest) return -1;
    const byteAt = (index: number): number =>
      index < this.headerFilled ? this.header[index]! : chunk[index - this.headerFilled]!;
    const bodyLength =
      (byteAt(2) * 0x1000000 + (byteAt(3) << 16) + (byteAt(4) << 8) + byteAt(5)) >>> 0;
    const total = headerRest + bodyLength;
    return total <= chunk.length ? total : -1;
  }

  feed(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.bodyRemaining > 0) {
        const take = Math.min(this.bodyRemaining, chunk.length - offset);
        this.bodyRemaining -= take;
        offset += take;
        continue;
      }
      const take = Math.min(PDU_HEADER_LENGTH - this.headerFilled, chunk.length - offset);
      // A byte loop: Buffer.copy's argument checks cost more than six bytes, once per PDU.
      for (let index = 0; index < take; index++) {
        this.header[this.headerFilled + index] = chunk[offset + index]!;
      }
      if (this.firstPduType < 0) this.firstPduType = this.header[0]!;
      this.headerFilled += take;
      offset += take;
      if (this.headerFilled === PDU_HEADER_LENGTH) {
        this.headerFilled = 0;
        this.bodyRemaining = this.header.readUInt32BE(2);
      }
    }
  }
}
