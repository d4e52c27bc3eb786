// Writes a synthetic pcap of SMB2 file reads in 1514-byte Ethernet frames: an outside client
// (203.0.113.60) reading whole files from an inside file server (10.20.0.20, port 445) with
// 1 MiB READ requests. Each connection carries NEGOTIATE, TREE_CONNECT and, per file, CREATE,
// READs and CLOSE, each request with its response. Used by the SMB sniff benchmark; every byte
// is generated here, so anyone can regenerate the file. There is no SESSION_SETUP, so the
// events name no user.

import { PcapWriter, TcpConnection } from './pcap-writer.js';

const SERVER_IP = [10, 20, 0, 20];
const CLIENT_IP = [203, 0, 113, 60];
const SMB_PORT = 445;
const SMB2_HEADER_LENGTH = 64;
const READ_CHUNK = 1024 * 1024;
const SESSION_ID = 0x4000_0000_0001n;
const TREE_ID = 1;
const SHARE = '\\\\filesrv\\exports';

const Command = { negotiate: 0x00, treeConnect: 0x03, create: 0x05, close: 0x06, read: 0x08 };

export interface SmbCaptureSpec {
  /** Stop after this many capture bytes (approximately). */
  targetBytes: number;
  /** Size of each file read, in bytes. */
  fileBytes: number;
  filesPerConnection: number;
}

export interface SmbCaptureResult {
  bytes: number;
  packets: number;
  files: number;
  /** File data bytes carried in READ responses. */
  fileDataBytes: number;
  connections: number;
}

/** MS-SMB2 2.2.1 sync header; `response` sets SMB2_FLAGS_SERVER_TO_REDIR. */
function smb2Header(command: number, messageId: bigint, response: boolean): Buffer {
  const header = Buffer.alloc(SMB2_HEADER_LENGTH);
  header.write('\xfeSMB', 0, 'latin1');
  header.writeUInt16LE(64, 4);
  header.writeUInt16LE(1, 6);
  header.writeUInt16LE(command, 12);
  header.writeUInt16LE(64, 14);
  header.writeUInt32LE(response ? 1 : 0, 16);
  header.writeBigUInt64LE(messageId, 24);
  header.writeUInt32LE(command === Command.negotiate ? 0 : TREE_ID, 36);
  header.writeBigUInt64LE(command === Command.negotiate ? 0n : SESSION_ID, 40);
  return header;
}

/** Prefixes a NetBIOS session message header (type 0, 24-bit length). */
function netbios(parts: Buffer[]): Buffer {
  const length = parts.reduce((sum, part) => sum + part.length, 0);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(length);
  return Buffer.concat([header, ...parts]);
}

function negotiateRequest(messageId: bigint): Buffer {
  const body = Buffer.alloc(36 + 2);
  body.writeUInt16LE(36, 0);
  body.writeUInt16LE(1, 2);
  body.writeUInt16LE(0x0311, 36);
  return netbios([smb2Header(Command.negotiate, messageId, false), body]);
}

function negotiateResponse(messageId: bigint): Buffer {
  const body = Buffer.alloc(64);
  body.writeUInt16LE(65, 0);
  body.writeUInt16LE(0x0311, 4);
  return netbios([smb2Header(Command.negotiate, messageId, true), body]);
}

function treeConnectRequest(messageId: bigint): Buffer {
  const path = Buffer.from(SHARE, 'utf16le');
  const body = Buffer.alloc(8);
  body.writeUInt16LE(9, 0);
  body.writeUInt16LE(SMB2_HEADER_LENGTH + 8, 4);
  body.writeUInt16LE(path.length, 6);
  return netbios([smb2Header(Command.treeConnect, messageId, false), body, path]);
}

function treeConnectResponse(messageId: bigint): Buffer {
  const body = Buffer.alloc(16);
  body.writeUInt16LE(16, 0);
  body.writeUInt8(1, 2);
  body.writeUInt32LE(0x001f01ff, 12);
  return netbios([smb2Header(Command.treeConnect, messageId, true), body]);
}

function createRequest(messageId: bigint, path: string): Buffer {
  const name = Buffer.from(path, 'utf16le');
  const body = Buffer.alloc(56);
  body.writeUInt16LE(57, 0);
  body.writeUInt32LE(0x00120089, 24);
  body.writeUInt32LE(1, 36);
  body.writeUInt16LE(SMB2_HEADER_LENGTH + 56, 44);
  body.writeUInt16LE(name.length, 46);
  return netbios([smb2Header(Command.create, messageId, false), body, name]);
}

function createResponse(messageId: bigint, fileId: Buffer, endOfFile: number): Buffer {
  const body = Buffer.alloc(88);
  body.writeUInt16LE(89, 0);
  body.writeUInt32LE(1, 4);
  body.writeBigUInt64LE(BigInt(endOfFile), 40);
  body.writeBigUInt64LE(BigInt(endOfFile), 48);
  body.writeUInt32LE(0x80, 56);
  fileId.copy(body, 64);
  return netbios([smb2Header(Command.create, messageId, true), body]);
}

function readRequest(messageId: bigint, fileId: Buffer, offset: number, length: number): Buffer {
  const body = Buffer.alloc(49);
  body.writeUInt16LE(49, 0);
  body.writeUInt32LE(length, 4);
  body.writeBigUInt64LE(BigInt(offset), 8);
  fileId.copy(body, 16);
  return netbios([smb2Header(Command.read, messageId, false), body]);
}

/** Builds the NetBIOS, SMB2 and fixed READ response headers that precede the data. */
function readResponseHead(messageId: bigint, dataLength: number): Buffer {
  const body = Buffer.alloc(16);
  body.writeUInt16LE(17, 0);
  body.writeUInt8(SMB2_HEADER_LENGTH + 16, 2);
  body.writeUInt32LE(dataLength, 4);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(SMB2_HEADER_LENGTH + 16 + dataLength);
  return Buffer.concat([header, smb2Header(Command.read, messageId, true), body]);
}

function closeRequest(messageId: bigint, fileId: Buffer): Buffer {
  const body = Buffer.alloc(24);
  body.writeUInt16LE(24, 0);
  fileId.copy(body, 8);
  return netbios([smb2Header(Command.close, messageId, false), body]);
}

function closeResponse(messageId: bigint): Buffer {
  const body = Buffer.alloc(60);
  body.writeUInt16LE(60, 0);
  return netbios([smb2Header(Command.close, messageId, true), body]);
}

/** File contents: every fourth file is a DICOM Part 10 file (.dcm with 'DICM' at offset 128). */
function fileData(size: number): { plain: Buffer; dicom: Buffer } {
  const plain = Buffer.alloc(Math.min(size, READ_CHUNK), 0x5a);
  plain.write('%PDF-1.4\n', 0, 'latin1');
  const dicom = Buffer.from(plain);
  dicom.fill(0, 0, 132);
  dicom.write('DICM', 128, 'latin1');
  return { plain, dicom };
}

/** Writes the capture and returns what it contains. */
export async function writeSmbCapture(
  path: string,
  spec: SmbCaptureSpec,
): Promise<SmbCaptureResult> {
  const out = new PcapWriter(path, {
    clientIp: CLIENT_IP,
    serverIp: SERVER_IP,
    serverPort: SMB_PORT,
  });
  const data = fileData(spec.fileBytes);
  const fileId = Buffer.alloc(16);
  let files = 0;
  let fileDataBytes = 0;
  let connections = 0;

  while (out.written < spec.targetBytes) {
    connections++;
    const connection = new TcpConnection(out, 40_000 + (connections % 20_000));
    let messageId = 0n;
    connection.send('client', negotiateRequest(messageId));
    connection.sendSegments('server', negotiateResponse(messageId));
    messageId++;
    connection.send('client', treeConnectRequest(messageId));
    connection.sendSegments('server', treeConnectResponse(messageId));

    for (let i = 0; i < spec.filesPerConnection && out.written < spec.targetBytes; i++) {
      files++;
      const dicom = files % 4 === 0;
      const name = dicom
        ? `studies\\S${Math.floor(files / 100)}\\IM${files}.dcm`
        : `exports\\PATIENT${files}_SYNTHETIC_record.pdf`;
      fileId.writeBigUInt64LE(BigInt(files), 0);
      fileId.writeBigUInt64LE(BigInt(connections), 8);
      messageId++;
      connection.send('client', createRequest(messageId, name));
      connection.sendSegments('server', createResponse(messageId, fileId, spec.fileBytes));

      for (let offset = 0; offset < spec.fileBytes; offset += READ_CHUNK) {
        const length = Math.min(READ_CHUNK, spec.fileBytes - offset);
        const chunk = offset === 0 && dicom ? data.dicom : data.plain;
        messageId++;
        connection.send('client', readRequest(messageId, fileId, offset, length));
        connection.sendSegments(
          'server',
          readResponseHead(messageId, length),
          chunk.subarray(0, length),
        );
        fileDataBytes += length;
        if (out.pending > 4 * 1024 * 1024) await out.flush();
      }

      messageId++;
      connection.send('client', closeRequest(messageId, fileId));
      connection.sendSegments('server', closeResponse(messageId));
    }
    connection.close();
  }

  await out.close();
  return { bytes: out.written, packets: out.packets, files, fileDataBytes, connections };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [path, megabytes] = process.argv.slice(2);
  if (path === undefined) {
    process.stderr.write('usage: smb-capture.js OUTPUT.pcap [MEGABYTES]\n');
    process.exit(2);
  }
  const result = await writeSmbCapture(path, {
    targetBytes: Number(megabytes ?? 600) * 1e6,
    fileBytes: 4 * 1024 * 1024 + 12_345,
    filesPerConnection: 100,
  });
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
