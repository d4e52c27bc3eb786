// MS-NLMP 2.2.1.3 AUTHENTICATE_MESSAGE, found inside the SPNEGO token of SESSION_SETUP.
//
//  0 Signature 'NTLMSSP\0'   8 MessageType (3)
// 12 LmChallengeResponseFields   20 NtChallengeResponseFields   28 DomainNameFields
// 36 UserNameFields   44 WorkstationFields   52 EncryptedRandomSessionKeyFields   60 NegotiateFlags
// Each *Fields is Len (2), MaxLen (2), BufferOffset (4), the offset counted from the signature.
import { SmbAnomaly } from '../anomalies.js';
import type { DecodeFailure } from './result.js';

export const NTLMSSP_SIGNATURE = Buffer.from('NTLMSSP\0', 'latin1');
const AUTHENTICATE = 3;
const FIXED_LENGTH = 64;
const NEGOTIATE_UNICODE = 0x1;

export interface NtlmAuthenticate {
  user: string;
  domain: string;
  workstation: string;
  /** True for an anonymous logon: empty user and an empty NT challenge response. */
  anonymous: boolean;
}

/** Returns the NTLMSSP message type at `offset`, or 0 when fewer than 12 bytes remain. */
export function ntlmMessageType(token: Buffer, offset: number): number {
  return offset + 12 <= token.length ? token.readUInt32LE(offset + 8) : 0;
}

/** Decodes the AUTHENTICATE message at `offset` of `token`, which ends the security buffer. */
export function decodeNtlmAuthenticate(
  token: Buffer,
  offset: number,
): NtlmAuthenticate | DecodeFailure {
  const messageLength = token.length - offset;
  if (messageLength < FIXED_LENGTH) {
    return { failure: SmbAnomaly.badNtlmssp, details: { messageLength, minimum: FIXED_LENGTH } };
  }
  const flags = token.readUInt32LE(offset + 60);
  const unicode = (flags & NEGOTIATE_UNICODE) !== 0;
  const fields: string[] = [];
  for (const at of [28, 36, 44]) {
    const length = token.readUInt16LE(offset + at);
    const start = token.readUInt32LE(offset + at + 4);
    if (start + length > messageLength) {
      return {
        failure: SmbAnomaly.badNtlmssp,
        details: { fieldOffset: at, fieldEnd: start + length, messageLength },
      };
    }
    const from = offset + start;
    fields.push(
      unicode
        ? token.toString('utf16le', from, from + (length & ~1))
        : token.toString('latin1', from, from + length),
    );
  }
  const ntResponseLength = token.readUInt16LE(offset + 20);
  const [domain = '', user = '', workstation = ''] = fields;
  return { user, domain, workstation, anonymous: user === '' && ntResponseLength === 0 };
}

export { AUTHENTICATE as NTLM_AUTHENTICATE };
