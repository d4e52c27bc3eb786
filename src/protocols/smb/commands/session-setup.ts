// MS-SMB2 2.2.5 SESSION_SETUP request and 2.2.6 response.
//
// Request: StructureSize (25), Flags (1), SecurityMode (1), Capabilities (4), Channel (4),
//          SecurityBufferOffset (2, from the header), SecurityBufferLength (2), PreviousSessionId (8).
// Response: StructureSize (9), SessionFlags (2), SecurityBufferOffset (2), SecurityBufferLength (2).
import type { SmbAuth } from '../../../engine/types.js';
import { SMB2_HEADER_LENGTH } from '../header.js';
import {
  decodeNtlmAuthenticate,
  NTLM_AUTHENTICATE,
  NTLMSSP_SIGNATURE,
  type NtlmAuthenticate,
  ntlmMessageType,
} from './ntlmssp.js';
import { beyondCommand, type DecodeFailure, isFailure } from './result.js';

// The Kerberos 5 mechanism OIDs as DER (1.2.840.113554.1.2.2 and Microsoft's 1.2.840.48018.1.2.2),
// each followed by the AP-REQ token id 01 00 inside a GSS-API InitialContextToken (RFC 4121 4.1).
const KRB5_AP_REQ = Buffer.from('06092a864886f71201020201 00'.replace(/ /g, ''), 'hex');
const MS_KRB5_AP_REQ = Buffer.from('06092a864882f712010202 0100'.replace(/ /g, ''), 'hex');

const SESSION_FLAG_IS_NULL = 0x2;
const SESSION_FLAG_ENCRYPT_DATA = 0x4;

export interface SessionSetupRequest {
  auth: SmbAuth;
  /** Present when the token is an NTLM AUTHENTICATE message. */
  ntlm?: NtlmAuthenticate;
  /** Set when the NTLMSSP message was present but malformed. */
  ntlmFailure?: DecodeFailure;
}

/** Decodes the security buffer of a request: which mechanism it uses, and the NTLM user. */
export function decodeSessionSetupRequest(command: Buffer): SessionSetupRequest | DecodeFailure {
  const fixedEnd = SMB2_HEADER_LENGTH + 24;
  if (fixedEnd > command.length) return beyondCommand('sessionSetup', fixedEnd, command.length);
  const bufferOffset = command.readUInt16LE(SMB2_HEADER_LENGTH + 12);
  const bufferLength = command.readUInt16LE(SMB2_HEADER_LENGTH + 14);
  if (bufferOffset + bufferLength > command.length) {
    return beyondCommand('securityBuffer', bufferOffset + bufferLength, command.length);
  }
  const token = command.subarray(bufferOffset, bufferOffset + bufferLength);

  const ntlmAt = token.indexOf(NTLMSSP_SIGNATURE);
  if (ntlmAt >= 0) {
    if (ntlmMessageType(token, ntlmAt) !== NTLM_AUTHENTICATE) return { auth: 'ntlm' };
    const ntlm = decodeNtlmAuthenticate(token, ntlmAt);
    if (isFailure(ntlm)) return { auth: 'ntlm', ntlmFailure: ntlm };
    return { auth: ntlm.anonymous ? 'anonymous' : 'ntlm', ntlm };
  }
  if (token.indexOf(KRB5_AP_REQ) >= 0 || token.indexOf(MS_KRB5_AP_REQ) >= 0)
    return { auth: 'kerberos' };
  return { auth: bufferLength === 0 ? 'anonymous' : 'unknown' };
}

export interface SessionSetupResponse {
  anonymous: boolean;
  encryptData: boolean;
}

export function decodeSessionSetupResponse(command: Buffer): SessionSetupResponse | DecodeFailure {
  const end = SMB2_HEADER_LENGTH + 4;
  if (end > command.length) return beyondCommand('sessionFlags', end, command.length);
  const flags = command.readUInt16LE(SMB2_HEADER_LENGTH + 2);
  return {
    anonymous: (flags & SESSION_FLAG_IS_NULL) !== 0,
    encryptData: (flags & SESSION_FLAG_ENCRYPT_DATA) !== 0,
  };
}
