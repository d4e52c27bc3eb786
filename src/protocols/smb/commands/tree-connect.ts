// MS-SMB2 2.2.9 TREE_CONNECT request: StructureSize (9), Flags (2), PathOffset (2, from the
// header), PathLength (2), then the UTF-16LE share path such as \\server\share.
import { readUtf16, SMB2_HEADER_LENGTH } from '../header.js';
import { beyondCommand, type DecodeFailure } from './result.js';

export function decodeTreeConnectRequest(command: Buffer): string | DecodeFailure {
  const fixedEnd = SMB2_HEADER_LENGTH + 8;
  if (fixedEnd > command.length) return beyondCommand('treeConnect', fixedEnd, command.length);
  const pathOffset = command.readUInt16LE(SMB2_HEADER_LENGTH + 4);
  const pathLength = command.readUInt16LE(SMB2_HEADER_LENGTH + 6);
  const path = readUtf16(command, pathOffset, pathLength, command.length);
  return path ?? beyondCommand('path', pathOffset + pathLength, command.length);
}
