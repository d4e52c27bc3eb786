// Keyed pseudonyms for patient identifiers, so events can be counted and correlated in a SIEM
// without carrying protected health information (PHI).

import { createHmac, randomBytes } from 'node:crypto';

/**
 * What a pseudonym stands for; the kind is hashed with the value. File paths and URL paths are
 * pseudonymized too, because exports and uploads are often named after the patient.
 */
export type PseudonymKind = 'patient-id' | 'patient-name' | 'file-path' | 'url-path';

/** Environment variable that contains the pseudonym key. */
export const PSEUDONYM_KEY_ENV = 'TOLLGATE_PSEUDONYM_KEY';
/** Shortest key accepted, in bytes; shorter keys make the pseudonyms guessable by brute force. */
export const MIN_PSEUDONYM_KEY_BYTES = 16;
/** Hex characters of the HMAC-SHA256 digest kept in a pseudonym (128 bits). */
const PSEUDONYM_HEX_LENGTH = 32;

export class PseudonymKeyError extends Error {
  readonly code = 'PSEUDONYM_KEY_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'PseudonymKeyError';
  }
}

let randomKeyWarned = false;

/**
 * Parses a configured key: "hex:<hex digits>", "base64:<base64>", or any other text taken as its
 * UTF-8 bytes. Throws PseudonymKeyError when the key is shorter than MIN_PSEUDONYM_KEY_BYTES.
 */
export function parsePseudonymKey(text: string): Buffer {
  let key: Buffer;
  if (text.startsWith('hex:')) {
    const hex = text.slice(4);
    if (!/^(?:[0-9a-fA-F]{2})+$/.test(hex))
      throw new PseudonymKeyError('pseudonym key after "hex:" is not hex');
    key = Buffer.from(hex, 'hex');
  } else if (text.startsWith('base64:')) {
    key = Buffer.from(text.slice(7), 'base64');
  } else {
    key = Buffer.from(text, 'utf8');
  }
  if (key.length < MIN_PSEUDONYM_KEY_BYTES) {
    throw new PseudonymKeyError(
      `pseudonym key length ${key.length} bytes is below the minimum ${MIN_PSEUDONYM_KEY_BYTES}`,
    );
  }
  return key;
}

export class Pseudonymizer {
  private readonly key: Buffer;
  /** True when no key was configured and a random per-process key is in use. */
  readonly randomKey: boolean;

  /**
   * `key` null means no key is configured: a random key is generated, so pseudonyms do not
   * correlate across runs, and a warning is emitted once per process. `includeClear` true makes
   * value() return the clear text, for sites that explicitly allow PHI in their SIEM.
   */
  constructor(
    key: Buffer | null,
    private readonly includeClear: boolean,
  ) {
    if (key && key.length < MIN_PSEUDONYM_KEY_BYTES) {
      throw new PseudonymKeyError(
        `pseudonym key length ${key.length} bytes is below the minimum ${MIN_PSEUDONYM_KEY_BYTES}`,
      );
    }
    this.randomKey = key === null;
    this.key = key ?? randomBytes(32);
    if (this.randomKey && !includeClear && !randomKeyWarned) {
      randomKeyWarned = true;
      process.emitWarning(
        `no pseudonym key configured (set ${PSEUDONYM_KEY_ENV} or --pseudonym-key-file); using a ` +
          'random key, so patient pseudonyms will not match across restarts',
        { code: 'TOLLGATE_PSEUDONYM_KEY_RANDOM' },
      );
    }
  }

  /** Creates a pseudonymizer keyed from TOLLGATE_PSEUDONYM_KEY, or a random key when it is unset. */
  static fromEnv(includeClear = false, env: NodeJS.ProcessEnv = process.env): Pseudonymizer {
    const text = env[PSEUDONYM_KEY_ENV];
    return new Pseudonymizer(text ? parsePseudonymKey(text) : null, includeClear);
  }

  /**
   * Returns "hmac-sha256:" and the first 32 hex digits of HMAC-SHA256(key, kind NUL value).
   * The kind is hashed too, so a patient id and a name with the same text differ. Leading and
   * trailing spaces (DICOM pads values with them) are removed first.
   */
  value(kind: PseudonymKind, clear: string): string {
    const trimmed = clear.trim();
    if (this.includeClear) return trimmed;
    const mac = createHmac('sha256', this.key).update(kind).update('\0').update(trimmed, 'utf8');
    return `hmac-sha256:${mac.digest('hex').slice(0, PSEUDONYM_HEX_LENGTH)}`;
  }
}
