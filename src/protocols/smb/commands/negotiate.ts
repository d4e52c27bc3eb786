// MS-SMB2 2.2.4 NEGOTIATE response: StructureSize (65), SecurityMode (2), DialectRevision (2).
import { SMB2_HEADER_LENGTH } from '../header.js';
import { beyondCommand, type DecodeFailure } from './result.js';

const DIALECTS: Record<number, string> = {
  514: '2.0.2',
  528: '2.1',
  767: '2.???',
  768: '3.0',
  770: '3.0.2',
  785: '3.1.1',
};

/** Returns the dialect the server chose, for example '3.1.1', or its hex code when unknown. */
export function decodeNegotiateResponse(command: Buffer): string | DecodeFailure {
  const end = SMB2_HEADER_LENGTH + 6;
  if (end > command.length) return beyondCommand('dialect', end, command.length);
  const revision = command.readUInt16LE(SMB2_HEADER_LENGTH + 4);
  return DIALECTS[revision] ?? `0x${revision.toString(16).padStart(4, '0')}`;
}
