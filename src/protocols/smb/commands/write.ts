// MS-SMB2 2.2.21 WRITE request: StructureSize (49), DataOffset (2, from the header), Length (4),
// Offset (8), FileId (16), Channel (4), RemainingBytes (4), WriteChannelInfoOffset (2),
// WriteChannelInfoLength (2), Flags (4), then the data, which the analyzer counts as it streams.
import { SMB2_HEADER_LENGTH } from '../header.js';
import type { DataRange } from './read.js';
import { beyondCommand, type DecodeFailure } from './result.js';

export const WRITE_REQUEST_FIXED_LENGTH = 48;

export interface WriteRequest extends DataRange {
  fileId: string;
  offset: number;
}

export function decodeWriteRequest(
  head: Buffer,
  commandLength: number,
): WriteRequest | DecodeFailure {
  const body = SMB2_HEADER_LENGTH;
  const fixedEnd = body + WRITE_REQUEST_FIXED_LENGTH;
  if (fixedEnd > head.length) return beyondCommand('write', fixedEnd, commandLength);
  const dataOffset = head.readUInt16LE(body + 2);
  const dataLength = head.readUInt32LE(body + 4);
  if (dataLength > 0 && dataOffset < fixedEnd)
    return beyondCommand('dataOffset', dataOffset, fixedEnd);
  if (dataOffset + dataLength > commandLength) {
    return beyondCommand('data', dataOffset + dataLength, commandLength);
  }
  return {
    dataOffset,
    dataLength,
    offset: Number(head.readBigUInt64LE(body + 8)),
    fileId: head.toString('hex', body + 16, body + 32),
  };
}
