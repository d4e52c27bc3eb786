// The admin API's bearer token: where it comes from and how a request's token is checked.
// The token itself is never logged and never part of an error message.

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';

/** Environment variable read when the config names no token_file. */
export const ADMIN_TOKEN_ENV = 'TOLLGATE_ADMIN_TOKEN';

/** Shortest token accepted, in characters; shorter tokens are too easy to guess. */
export const MIN_TOKEN_LENGTH = 16;

/** Largest token file read, in bytes. */
export const MAX_TOKEN_FILE_BYTES = 4096;

/** RFC 6750 b64token: the characters a bearer token may contain in an Authorization header. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

export type TokenSource = { kind: 'file'; path: string } | { kind: 'env'; name: string };

export type TokenResult =
  | { ok: true; token: string; source: TokenSource }
  | { ok: false; reason: string };

/**
 * Reads the admin token from `tokenFile` when it is set, else from TOLLGATE_ADMIN_TOKEN in
 * `env`. A configured file that cannot be read is an error, never a fall-back to the
 * environment. Surrounding whitespace (the file's trailing newline) is removed.
 */
export function loadAdminToken(tokenFile: string | null, env: NodeJS.ProcessEnv): TokenResult {
  if (tokenFile !== null) {
    let text: string;
    try {
      const size = statSync(tokenFile).size;
      if (size > MAX_TOKEN_FILE_BYTES) {
        return {
          ok: false,
          reason: `token file ${tokenFile} is ${size} bytes, more than the maximum ${MAX_TOKEN_FILE_BYTES}`,
        };
      }
      text = readFileSync(tokenFile, 'utf8');
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      return { ok: false, reason: `cannot read token file ${tokenFile}: ${reason}` };
    }
    return checkToken(text.trim(), { kind: 'file', path: tokenFile }, `token file ${tokenFile}`);
  }

  const value = env[ADMIN_TOKEN_ENV];
  if (value === undefined || value.trim() === '') {
    return { ok: false, reason: `no token: set admin.token_file or ${ADMIN_TOKEN_ENV}` };
  }
  return checkToken(value.trim(), { kind: 'env', name: ADMIN_TOKEN_ENV }, ADMIN_TOKEN_ENV);
}

function checkToken(token: string, source: TokenSource, where: string): TokenResult {
  if (token.length < MIN_TOKEN_LENGTH) {
    return {
      ok: false,
      reason: `the token in ${where} has ${token.length} characters, fewer than the minimum ${MIN_TOKEN_LENGTH}`,
    };
  }
  if (!B64TOKEN.test(token)) {
    return {
      ok: false,
      reason: `the token in ${where} contains characters a bearer token cannot carry; use A-Z, a-z, 0-9 and -._~+/`,
    };
  }
  return { ok: true, token, source };
}

/**
 * Checks Authorization header values against one token. Both sides are hashed with SHA-256
 * first, so the comparison is over equal-length digests and takes the same time whatever the
 * length or content of the presented token.
 */
export class BearerTokenChecker {
  private readonly expected: Buffer;

  constructor(token: string) {
    this.expected = sha256(token);
  }

  /** Returns true when `header` is `Bearer <token>` with the configured token. */
  matches(header: string | undefined): boolean {
    if (header === undefined) return false;
    const match = /^bearer +(\S+) *$/i.exec(header);
    if (match === null) return false;
    return timingSafeEqual(sha256(match[1]!), this.expected);
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
