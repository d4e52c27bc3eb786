// MS-SMB2 2.2.13 CREATE request and 2.2.14 CREATE response.
//
// Request (offsets from the body): 24 DesiredAccess (4), 36 CreateDisposition (4),
// 40 CreateOptions (4), 44 NameOffset (2, from the header), 46 NameLength (2).
// Response (offsets from the body): 48 EndofFile (8), 56 FileAttributes (4), 64 FileId (16).
import type { SmbFileAccess } from '../../../engine/types.js';
import { readUtf16, SMB2_HEADER_LENGTH } from '../header.js';
import { beyondCommand, type DecodeFailure } from './result.js';

const DISPOSITIONS: SmbFileAccess['disposition'][] = [
  'supersede',
  'open',
  'create',
  'open-if',
  'overwrite',
  'overwrite-if',
];
const FILE_DELETE_ON_CLOSE = 0x1000;
const FILE_ATTRIBUTE_DIRECTORY = 0x10;

export interface CreateRequest {
  path: string;
  desiredAccess: number;
  disposition: SmbFileAccess['disposition'];
  deleteOnClose: boolean;
}

export function decodeCreateRequest(command: Buffer): CreateRequest | DecodeFailure {
  const body = SMB2_HEADER_LENGTH;
  const fixedEnd = body + 56;
  if (fixedEnd > command.length) return beyondCommand('create', fixedEnd, command.length);
  const desiredAccess = command.readUInt32LE(body + 24);
  const dispositionCode = command.readUInt32LE(body + 36);
  const createOptions = command.readUInt32LE(body + 40);
  const nameOffset = command.readUInt16LE(body + 44);
  const nameLength = command.readUInt16LE(body + 46);
  const path = nameLength === 0 ? '' : readUtf16(command, nameOffset, nameLength, command.length);
  if (path === null) return beyondCommand('name', nameOffset + nameLength, command.length);
  return {
    path,
    desiredAccess,
    disposition: DISPOSITIONS[dispositionCode] ?? 'unknown',
    deleteOnClose: (createOptions & FILE_DELETE_ON_CLOSE) !== 0,
  };
}

export interface CreateResponse {
  fileId: string;
  endOfFile: number;
  directory: boolean;
}

export function decodeCreateResponse(command: Buffer): CreateResponse | DecodeFailure {
  const body = SMB2_HEADER_LENGTH;
  const fixedEnd = body + 80;
  if (fixedEnd > command.length) return beyondCommand('create', fixedEnd, command.length);
  return {
    endOfFile: Number(command.readBigUInt64LE(body + 48)),
    directory: (command.readUInt32LE(body + 56) & FILE_ATTRIBUTE_DIRECTORY) !== 0,
    fileId: command.toString('hex', body + 64, body + 80),
  };
}
