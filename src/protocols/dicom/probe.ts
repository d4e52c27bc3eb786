import type { Side } from '../../engine/types.js';
import { ASSOCIATE_FIXED_LENGTH } from './associate.js';
import { PDV_HEADER_LENGTH, PduType } from './constants.js';
import { DEFAULT_DICOM_LIMITS } from './limits.js';

/** Bytes needed to check a P-DATA-TF header together with its first PDV header. */
const PDATA_PROBE_LENGTH = 12;
/** Bytes needed to check an A-ASSOCIATE-RQ header and its protocol version. */
const ASSOCIATE_PROBE_LENGTH = 10;

/**
 * Decides from the first bytes of one side's stream whether it carries the DICOM Upper Layer.
 * Returns true for an A-ASSOCIATE-RQ sent by the initiator (PS3.8 section 9.3.2) or for a
 * plausible P-DATA-TF header (mid-stream pickup), false for anything else, and undefined while
 * too few bytes have arrived to tell.
 */
export function probeDicom(side: Side, head: Buffer): boolean | undefined {
  if (head.length < 2) {
    return head.length === 0 || head[0] === PduType.AssociateRq || head[0] === PduType.PDataTf
      ? undefined
      : false;
  }
  const type = head[0];
  if (head[1] !== 0) {
    return false;
  }
  if (type === PduType.AssociateRq) {
    if (side !== 0) {
      return false;
    }
    if (head.length < ASSOCIATE_PROBE_LENGTH) {
      return undefined;
    }
    // No upper bound on the length here: an oversized A-ASSOCIATE-RQ is still DICOM, and the
    // analyzer reports it as dicom.associate_too_large with the length and the limit.
    const length = head.readUInt32BE(2);
    const protocolVersion = head.readUInt16BE(6);
    return length >= ASSOCIATE_FIXED_LENGTH && (protocolVersion & 0x0001) === 1;
  }
  if (type === PduType.PDataTf) {
    if (head.length >= 6) {
      const length = head.readUInt32BE(2);
      if (length < PDV_HEADER_LENGTH || length > DEFAULT_DICOM_LIMITS.maxPduLength) {
        return false;
      }
    }
    if (head.length < PDATA_PROBE_LENGTH) {
      return undefined;
    }
    const pduLength = head.readUInt32BE(2);
    const pdvLength = head.readUInt32BE(6);
    const contextId = head.readUInt8(10);
    const controlHeader = head.readUInt8(11);
    return (
      pduLength >= PDV_HEADER_LENGTH &&
      pduLength <= DEFAULT_DICOM_LIMITS.maxPduLength &&
      pdvLength >= 2 &&
      pdvLength <= pduLength - 4 &&
      contextId % 2 === 1 &&
      controlHeader <= 3
    );
  }
  return false;
}
