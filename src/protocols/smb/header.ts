// MS-SMB2 2.2.1 SMB2 packet header, and the helpers every command decoder shares.
//
//  0 ProtocolId 0xFE 'SMB'   4 StructureSize (64)   6 CreditCharge
//  8 Status (responses)     12 Command             14 CreditRequest/Response
// 16 Flags                  20 NextCommand         24 MessageId (8)
// 32 Reserved (4) TreeId (4), or AsyncId (8) when SMB2_FLAGS_ASYNC_COMMAND is set
// 40 SessionId (8)          48 Signature (16)

export const SMB2_HEADER_LENGTH = 64;
/** MS-SMB2 3.2.4.1.4: a related operation's FileId that means "the FileId of the previous CREATE". */
export const RELATED_FILE_ID = 'ffffffffffffffffffffffffffffffff';

export const Command = {
  negotiate: 0x00,
  sessionSetup: 0x01,
  logoff: 0x02,
  treeConnect: 0x03,
  treeDisconnect: 0x04,
  create: 0x05,
  close: 0x06,
  flush: 0x07,
  read: 0x08,
  write: 0x09,
  lock: 0x0a,
  ioctl: 0x0b,
  cancel: 0x0c,
  echo: 0x0d,
  queryDirectory: 0x0e,
  changeNotify: 0x0f,
  queryInfo: 0x10,
  setInfo: 0x11,
  oplockBreak: 0x12,
} as const;

export const MAX_COMMAND = Command.oplockBreak;

const FLAG_RESPONSE = 0x1;
const FLAG_ASYNC = 0x2;
const FLAG_RELATED = 0x4;
const FLAG_SIGNED = 0x8;

export const Status = {
  success: 0x00000000,
  pending: 0x00000103,
  moreProcessingRequired: 0xc0000016,
  bufferOverflow: 0x80000005,
  noMoreFiles: 0x80000006,
} as const;

export interface Smb2Header {
  command: number;
  status: number;
  isResponse: boolean;
  isAsync: boolean;
  isRelated: boolean;
  isSigned: boolean;
  nextCommand: number;
  messageId: bigint;
  /** 0 for async messages, which carry an AsyncId in its place. */
  treeId: number;
  sessionId: bigint;
}

/** Decodes the 64-byte header at `offset`; the caller has checked the ProtocolId and the length. */
export function decodeSmb2Header(buffer: Buffer, offset: number): Smb2Header {
  const status = buffer.readUInt32LE(offset + 8);
  const command = buffer.readUInt16LE(offset + 12);
  const flags = buffer.readUInt32LE(offset + 16);
  const nextCommand = buffer.readUInt32LE(offset + 20);
  const messageId = buffer.readBigUInt64LE(offset + 24);
  const isAsync = (flags & FLAG_ASYNC) !== 0;
  const treeId = isAsync ? 0 : buffer.readUInt32LE(offset + 36);
  const sessionId = buffer.readBigUInt64LE(offset + 40);
  return {
    command,
    status,
    isResponse: (flags & FLAG_RESPONSE) !== 0,
    isAsync,
    isRelated: (flags & FLAG_RELATED) !== 0,
    isSigned: (flags & FLAG_SIGNED) !== 0,
    nextCommand,
    messageId,
    treeId,
    sessionId,
  };
}

/** Returns true when `buffer` holds `magic` 'SMB' at `offset` (0xFE SMB2, 0xFD transform, 0xFF SMB1). */
export function hasProtocolId(buffer: Buffer, offset: number, magic: number): boolean {
  return (
    buffer.length >= offset + 4 &&
    buffer[offset] === magic &&
    buffer[offset + 1] === 0x53 &&
    buffer[offset + 2] === 0x4d &&
    buffer[offset + 3] === 0x42
  );
}

/** Formats a SessionId as tshark does: hexadecimal without leading zeros. */
export function sessionIdText(sessionId: bigint): string {
  return sessionId.toString(16);
}

/**
 * Decodes a UTF-16LE string of `length` bytes at `offset`, or returns null when it does not fit
 * inside `end` (the end of the enclosing structure).
 */
export function readUtf16(
  buffer: Buffer,
  offset: number,
  length: number,
  end: number,
): string | null {
  if (offset < 0 || length < 0 || offset + length > end || offset + length > buffer.length)
    return null;
  return buffer.toString('utf16le', offset, offset + (length & ~1));
}
