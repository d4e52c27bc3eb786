// MS-SMB2 2.2.15 CLOSE request: StructureSize (24), Flags (2), Reserved (4), FileId (16).
import { SMB2_HEADER_LENGTH } from '../header.js';
import { beyondCommand, type DecodeFailure } from './result.js';

/** Returns the FileId in hex. */
export function decodeCloseRequest(command: Buffer): string | DecodeFailure {
  const body = SMB2_HEADER_LENGTH;
  const fixedEnd = body + 24;
  if (fixedEnd > command.length) return beyondCommand('close', fixedEnd, command.length);
  return command.toString('hex', body + 8, body + 24);
}
