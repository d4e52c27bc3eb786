// MS-SMB2 2.2.19 READ request and 2.2.20 READ response.
//
// Request (offsets from the body): 4 Length (4), 8 Offset (8), 16 FileId (16).
// Response: StructureSize (17), DataOffset (1, from the header), Reserved (1), DataLength (4),
// DataRemaining (4), Reserved2 (4), then the data. Only the fixed part is decoded here; the
// analyzer counts the data as it streams past.
import { SMB2_HEADER_LENGTH } from '../header.js';
import { beyondCommand, type DecodeFailure } from './result.js';

export const READ_RESPONSE_FIXED_LENGTH = 16;

export interface ReadRequest {
  fileId: string;
  offset: number;
  length: number;
}

export function decodeReadRequest(command: Buffer): ReadRequest | DecodeFailure {
  const body = SMB2_HEADER_LENGTH;
  const fixedEnd = body + 32;
  if (fixedEnd > command.length) return beyondCommand('read', fixedEnd, command.length);
  return {
    length: command.readUInt32LE(body + 4),
    offset: Number(command.readBigUInt64LE(body + 8)),
    fileId: command.toString('hex', body + 16, body + 32),
  };
}

/** Where the data lies in the command, counted from the header's first byte. */
export interface DataRange {
  dataOffset: number;
  dataLength: number;
}

/** Decodes the fixed part; `commandLength` is the whole command's length, not what is buffered. */
export function decodeReadResponse(head: Buffer, commandLength: number): DataRange | DecodeFailure {
  const body = SMB2_HEADER_LENGTH;
  const fixedEnd = body + READ_RESPONSE_FIXED_LENGTH;
  if (fixedEnd > head.length) return beyondCommand('read', fixedEnd, commandLength);
  const dataOffset = head.readUInt8(body + 2);
  const dataLength = head.readUInt32LE(body + 4);
  if (dataLength > 0 && dataOffset < fixedEnd)
    return beyondCommand('dataOffset', dataOffset, fixedEnd);
  if (dataOffset + dataLength > commandLength) {
    return beyondCommand('data', dataOffset + dataLength, commandLength);
  }
  return { dataOffset, dataLength };
}
