// MS-SMB2 2.2.39 SET_INFO request: StructureSize (33), InfoType (1), FileInfoClass (1),
// BufferLength (4), BufferOffset (2, from the header), Reserved (2), AdditionalInformation (4),
// FileId (16), then the buffer. Decoded classes (MS-FSCC 2.4):
//   FileRenameInformation (10): ReplaceIfExists (1), Reserved (7), RootDirectory (8),
//     FileNameLength (4), FileName (UTF-16LE).
//   FileDispositionInformation (13): DeletePending (1).
//   FileDispositionInformationEx (64): Flags (4), bit 0x1 FILE_DISPOSITION_DELETE.
import { readUtf16, SMB2_HEADER_LENGTH } from '../header.js';
import { beyondCommand, type DecodeFailure } from './result.js';

const INFO_FILE = 1;
const FILE_RENAME_INFORMATION = 10;
const FILE_DISPOSITION_INFORMATION = 13;
const FILE_DISPOSITION_INFORMATION_EX = 64;

export interface SetInfoRequest {
  fileId: string;
  renamedTo?: string;
  /** True or false when the request sets the delete disposition; absent for other classes. */
  deletePending?: boolean;
}

export function decodeSetInfoRequest(command: Buffer): SetInfoRequest | DecodeFailure {
  const body = SMB2_HEADER_LENGTH;
  const fixedEnd = body + 32;
  if (fixedEnd > command.length) return beyondCommand('setInfo', fixedEnd, command.length);
  const infoType = command.readUInt8(body + 2);
  const infoClass = command.readUInt8(body + 3);
  const bufferLength = command.readUInt32LE(body + 4);
  const bufferOffset = command.readUInt16LE(body + 8);
  const fileId = command.toString('hex', body + 16, body + 32);
  const bufferEnd = bufferOffset + bufferLength;
  if (bufferEnd > command.length) return beyondCommand('buffer', bufferEnd, command.length);
  if (infoType !== INFO_FILE) return { fileId };

  if (infoClass === FILE_RENAME_INFORMATION) {
    if (bufferLength < 20) return beyondCommand('renameInformation', bufferOffset + 20, bufferEnd);
    const nameLength = command.readUInt32LE(bufferOffset + 16);
    const renamedTo = readUtf16(command, bufferOffset + 20, nameLength, bufferEnd);
    if (renamedTo === null)
      return beyondCommand('fileName', bufferOffset + 20 + nameLength, bufferEnd);
    return { fileId, renamedTo };
  }
  if (infoClass === FILE_DISPOSITION_INFORMATION && bufferLength >= 1) {
    return { fileId, deletePending: command.readUInt8(bufferOffset) !== 0 };
  }
  if (infoClass === FILE_DISPOSITION_INFORMATION_EX && bufferLength >= 4) {
    return { fileId, deletePending: (command.readUInt32LE(bufferOffset) & 0x1) !== 0 };
  }
  return { fileId };
}
