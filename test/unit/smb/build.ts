// Builders for SMB2 messages used by the unit tests. Field layouts follow MS-SMB2 2.2.
export interface HeaderFields {
  command: number;
  messageId: bigint;
  response?: boolean;
  status?: number;
  related?: boolean;
  signed?: boolean;
  async?: boolean;
  nextCommand?: number;
  treeId?: number;
  sessionId?: bigint;
}

/** Returns a 64-byte SMB2 sync (or async) header. */
export function smb2Header(fields: HeaderFields): Buffer {
  const header = Buffer.alloc(64);
  header.write('fe534d42', 0, 'hex'); // ProtocolId 0xFE 'SMB'
  header.writeUInt16LE(64, 4); // StructureSize
  header.writeUInt16LE(1, 6); // CreditCharge
  header.writeUInt32LE(fields.status ?? 0, 8);
  header.writeUInt16LE(fields.command, 12);
  header.writeUInt16LE(1, 14); // CreditRequest
  const flags =
    (fields.response ? 0x1 : 0) |
    (fields.async ? 0x2 : 0) |
    (fields.related ? 0x4 : 0) |
    (fields.signed ? 0x8 : 0);
  header.writeUInt32LE(flags, 16);
  header.writeUInt32LE(fields.nextCommand ?? 0, 20);
  header.writeBigUInt64LE(fields.messageId, 24);
  header.writeUInt32LE(fields.treeId ?? 0, 36);
  header.writeBigUInt64LE(fields.sessionId ?? 0n, 40);
  return header;
}

/** Wraps commands in one NetBIOS session message (type 0x00, 24-bit length). */
export function netbios(...commands: Buffer[]): Buffer {
  const payload = Buffer.concat(commands);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(payload.length, 0);
  return Buffer.concat([header, payload]);
}

/** Pads a command to a multiple of 8 bytes, as compound members must be. */
export function pad8(command: Buffer): Buffer {
  const padding = (8 - (command.length % 8)) % 8;
  return Buffer.concat([command, Buffer.alloc(padding)]);
}

export function utf16(text: string): Buffer {
  return Buffer.from(text, 'utf16le');
}

export function fileId(n: number): Buffer {
  const id = Buffer.alloc(16);
  id.writeUInt32LE(n, 0);
  id.writeUInt32LE(n, 8);
  return id;
}

export const RELATED = Buffer.alloc(16, 0xff);

export function negotiateResponse(messageId: bigint, dialect: number): Buffer {
  const body = Buffer.alloc(64);
  body.writeUInt16LE(65, 0); // StructureSize
  body.writeUInt16LE(dialect, 4); // DialectRevision
  return Buffer.concat([smb2Header({ command: 0, messageId, response: true }), body]);
}

/** An NTLMSSP AUTHENTICATE message (MS-NLMP 2.2.1.3) with Unicode domain, user and workstation. */
export function ntlmAuthenticate(
  domain: string,
  user: string,
  workstation: string,
  ntResponseLength = 24,
): Buffer {
  const fields = [
    Buffer.alloc(24),
    Buffer.alloc(ntResponseLength),
    utf16(domain),
    utf16(user),
    utf16(workstation),
  ];
  const fixed = Buffer.alloc(88);
  fixed.write('NTLMSSP\0', 0, 'latin1');
  fixed.writeUInt32LE(3, 8); // MessageType AUTHENTICATE
  let offset = fixed.length;
  [12, 20, 28, 36, 44].forEach((at, index) => {
    const length = (fields[index] as Buffer).length;
    fixed.writeUInt16LE(length, at);
    fixed.writeUInt16LE(length, at + 2);
    fixed.writeUInt32LE(offset, at + 4);
    offset += length;
  });
  fixed.writeUInt32LE(0x1, 60); // NegotiateFlags: NTLMSSP_NEGOTIATE_UNICODE
  return Buffer.concat([fixed, ...fields]);
}

export function sessionSetupRequest(messageId: bigint, sessionId: bigint, token: Buffer): Buffer {
  const body = Buffer.alloc(24);
  body.writeUInt16LE(25, 0); // StructureSize
  body.writeUInt16LE(64 + 24, 12); // SecurityBufferOffset
  body.writeUInt16LE(token.length, 14);
  return Buffer.concat([smb2Header({ command: 1, messageId, sessionId }), body, token]);
}

export function sessionSetupResponse(
  messageId: bigint,
  sessionId: bigint,
  sessionFlags = 0,
): Buffer {
  const body = Buffer.alloc(8);
  body.writeUInt16LE(9, 0);
  body.writeUInt16LE(sessionFlags, 2);
  return Buffer.concat([smb2Header({ command: 1, messageId, sessionId, response: true }), body]);
}

export function treeConnectRequest(messageId: bigint, sessionId: bigint, path: string): Buffer {
  const name = utf16(path);
  const body = Buffer.alloc(8);
  body.writeUInt16LE(9, 0);
  body.writeUInt16LE(64 + 8, 4); // PathOffset
  body.writeUInt16LE(name.length, 6);
  return Buffer.concat([smb2Header({ command: 3, messageId, sessionId }), body, name]);
}

export function treeConnectResponse(messageId: bigint, sessionId: bigint, treeId: number): Buffer {
  const body = Buffer.alloc(16);
  body.writeUInt16LE(16, 0);
  return Buffer.concat([
    smb2Header({ command: 3, messageId, sessionId, treeId, response: true }),
    body,
  ]);
}

export interface Ids {
  sessionId: bigint;
  treeId: number;
}

export function createRequest(
  messageId: bigint,
  ids: Ids,
  path: string,
  options: { related?: boolean; disposition?: number; deleteOnClose?: boolean } = {},
): Buffer {
  const name = utf16(path);
  const body = Buffer.alloc(56);
  body.writeUInt16LE(57, 0);
  body.writeUInt32LE(0x00120089, 24); // DesiredAccess: read data, attributes, EA, control, synchronize
  body.writeUInt32LE(options.disposition ?? 1, 36); // CreateDisposition FILE_OPEN
  body.writeUInt32LE(options.deleteOnClose ? 0x1000 : 0, 40);
  body.writeUInt16LE(64 + 56, 44); // NameOffset
  body.writeUInt16LE(name.length, 46);
  return Buffer.concat([
    smb2Header({ command: 5, messageId, related: options.related, ...ids }),
    body,
    name,
  ]);
}

export function createResponse(
  messageId: bigint,
  ids: Ids,
  id: Buffer,
  endOfFile: number,
  directory = false,
): Buffer {
  const body = Buffer.alloc(88);
  body.writeUInt16LE(89, 0);
  body.writeBigUInt64LE(BigInt(endOfFile), 48); // EndofFile
  body.writeUInt32LE(directory ? 0x10 : 0x80, 56); // FileAttributes
  id.copy(body, 64);
  return Buffer.concat([smb2Header({ command: 5, messageId, response: true, ...ids }), body]);
}

export function readRequest(
  messageId: bigint,
  ids: Ids,
  id: Buffer,
  offset: number,
  length: number,
  related = false,
): Buffer {
  const body = Buffer.alloc(49);
  body.writeUInt16LE(49, 0);
  body.writeUInt32LE(length, 4);
  body.writeBigUInt64LE(BigInt(offset), 8);
  id.copy(body, 16);
  return Buffer.concat([smb2Header({ command: 8, messageId, related, ...ids }), body]);
}

export function readResponse(messageId: bigint, ids: Ids, data: Buffer): Buffer {
  const body = Buffer.alloc(16);
  body.writeUInt16LE(17, 0);
  body.writeUInt8(64 + 16, 2); // DataOffset
  body.writeUInt32LE(data.length, 4);
  return Buffer.concat([smb2Header({ command: 8, messageId, response: true, ...ids }), body, data]);
}

export function writeRequest(
  messageId: bigint,
  ids: Ids,
  id: Buffer,
  offset: number,
  data: Buffer,
): Buffer {
  const body = Buffer.alloc(48);
  body.writeUInt16LE(49, 0);
  body.writeUInt16LE(64 + 48, 2); // DataOffset
  body.writeUInt32LE(data.length, 4);
  body.writeBigUInt64LE(BigInt(offset), 8);
  id.copy(body, 16);
  return Buffer.concat([smb2Header({ command: 9, messageId, ...ids }), body, data]);
}

export function closeRequest(messageId: bigint, ids: Ids, id: Buffer, related = false): Buffer {
  const body = Buffer.alloc(24);
  body.writeUInt16LE(24, 0);
  id.copy(body, 8);
  return Buffer.concat([smb2Header({ command: 6, messageId, related, ...ids }), body]);
}

export function closeResponse(messageId: bigint, ids: Ids): Buffer {
  const body = Buffer.alloc(60);
  body.writeUInt16LE(60, 0);
  return Buffer.concat([smb2Header({ command: 6, messageId, response: true, ...ids }), body]);
}

export function queryDirectoryRequest(messageId: bigint, ids: Ids, id: Buffer): Buffer {
  const body = Buffer.alloc(32);
  body.writeUInt16LE(33, 0);
  id.copy(body, 8);
  return Buffer.concat([smb2Header({ command: 14, messageId, ...ids }), body]);
}

/** A response whose entries are `entryLengths` long each (NextEntryOffset chain, last one 0). */
export function queryDirectoryResponse(
  messageId: bigint,
  ids: Ids,
  entryLengths: number[],
): Buffer {
  const entries = entryLengths.map((length, index) => {
    const entry = Buffer.alloc(length);
    entry.writeUInt32LE(index === entryLengths.length - 1 ? 0 : length, 0);
    return entry;
  });
  const output = Buffer.concat(entries);
  const body = Buffer.alloc(8);
  body.writeUInt16LE(9, 0);
  body.writeUInt16LE(64 + 8, 2); // OutputBufferOffset
  body.writeUInt32LE(output.length, 4);
  return Buffer.concat([
    smb2Header({ command: 14, messageId, response: true, ...ids }),
    body,
    output,
  ]);
}

export function setInfoRename(messageId: bigint, ids: Ids, id: Buffer, newName: string): Buffer {
  const name = utf16(newName);
  const info = Buffer.alloc(20);
  info.writeUInt32LE(name.length, 16); // FileNameLength
  const buffer = Buffer.concat([info, name]);
  const body = Buffer.alloc(32);
  body.writeUInt16LE(33, 0);
  body.writeUInt8(1, 2); // InfoType SMB2_0_INFO_FILE
  body.writeUInt8(10, 3); // FileRenameInformation
  body.writeUInt32LE(buffer.length, 4);
  body.writeUInt16LE(64 + 32, 8); // BufferOffset
  id.copy(body, 16);
  return Buffer.concat([smb2Header({ command: 17, messageId, ...ids }), body, buffer]);
}

export function emptyResponse(command: number, messageId: bigint, ids: Ids, status = 0): Buffer {
  const body = Buffer.alloc(8);
  body.writeUInt16LE(status === 0 ? 2 : 9, 0);
  return Buffer.concat([smb2Header({ command, messageId, response: true, status, ...ids }), body]);
}
