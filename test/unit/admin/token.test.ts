import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN_ENV,
  BearerTokenChecker,
  loadAdminToken,
  MAX_TOKEN_FILE_BYTES,
  MIN_TOKEN_LENGTH,
  type TokenResult,
} from '../../../src/admin/token.js';

const TOKEN = 'k3Jx9-Qm2_Vt8.Zr~4Lp+Wn/6Hs=';
const dir = mkdtempSync(join(tmpdir(), 'tollgate-token-'));

/** Returns the reason of a failed result; fails the test when a token was loaded. */
function reasonOf(result: TokenResult): string {
  if (result.ok) throw new Error('expected no token to be loaded');
  return result.reason;
}

/** Returns the token of a successful result; fails the test when none was loaded. */
function tokenOf(result: TokenResult): string {
  if (!result.ok) throw new Error(`expected a token, got: ${result.reason}`);
  return result.token;
}

function tokenFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  chmodSync(path, 0o600);
  return path;
}

describe('loadAdminToken', () => {
  it('reads the token file without its trailing newline', () => {
    const result = loadAdminToken(tokenFile('good', `${TOKEN}\n`), {});
    expect(result).toEqual({
      ok: true,
      token: TOKEN,
      source: { kind: 'file', path: join(dir, 'good') },
    });
  });

  it('prefers the token file over the environment', () => {
    const result = loadAdminToken(tokenFile('pref', TOKEN), {
      [ADMIN_TOKEN_ENV]: 'another-token-from-the-environment',
    });
    expect(tokenOf(result)).toBe(TOKEN);
  });

  it('reads TOLLGATE_ADMIN_TOKEN without a token file', () => {
    const result = loadAdminToken(null, { [ADMIN_TOKEN_ENV]: ` ${TOKEN} ` });
    expect(result).toEqual({
      ok: true,
      token: TOKEN,
      source: { kind: 'env', name: ADMIN_TOKEN_ENV },
    });
  });

  it('reports a missing token', () => {
    for (const env of [{}, { [ADMIN_TOKEN_ENV]: '' }, { [ADMIN_TOKEN_ENV]: '  \n' }]) {
      const result = loadAdminToken(null, env);
      expect(result.ok).toBe(false);
      expect(reasonOf(result)).toBe(`no token: set admin.token_file or ${ADMIN_TOKEN_ENV}`);
    }
  });

  it('does not fall back to the environment when the file is missing', () => {
    const missing = join(dir, 'missing');
    const result = loadAdminToken(missing, { [ADMIN_TOKEN_ENV]: TOKEN });
    expect(result.ok).toBe(false);
    expect(reasonOf(result)).toContain(`cannot read token file ${missing}`);
  });

  it('rejects a short token without quoting it', () => {
    const short = 'a'.repeat(MIN_TOKEN_LENGTH - 1);
    const result = loadAdminToken(tokenFile('short', short), {});
    expect(result.ok).toBe(false);
    const reason = reasonOf(result);
    expect(reason).toContain(`${MIN_TOKEN_LENGTH - 1} characters`);
    expect(reason).toContain(`minimum ${MIN_TOKEN_LENGTH}`);
    expect(reason).not.toContain(short);
  });

  it('rejects characters a bearer token cannot carry', () => {
    const spaced = 'abcdefgh ijklmnopqrstu';
    const result = loadAdminToken(null, { [ADMIN_TOKEN_ENV]: spaced });
    expect(result.ok).toBe(false);
    expect(reasonOf(result)).toContain(ADMIN_TOKEN_ENV);
    expect(reasonOf(result)).not.toContain(spaced);
  });

  it('rejects a token file over the size limit', () => {
    const path = tokenFile('large', 'a'.repeat(MAX_TOKEN_FILE_BYTES + 1));
    const result = loadAdminToken(path, {});
    expect(result.ok).toBe(false);
    expect(reasonOf(result)).toBe(
      `token file ${path} is ${MAX_TOKEN_FILE_BYTES + 1} bytes, more than the maximum ${MAX_TOKEN_FILE_BYTES}`,
    );
  });
});

describe('BearerTokenChecker', () => {
  const checker = new BearerTokenChecker(TOKEN);

  it('accepts the token with the Bearer scheme in any case', () => {
    expect(checker.matches(`Bearer ${TOKEN}`)).toBe(true);
    expect(checker.matches(`bearer ${TOKEN}`)).toBe(true);
    expect(checker.matches(`BEARER  ${TOKEN} `)).toBe(true);
  });

  it.each([
    ['no header', undefined],
    ['empty header', ''],
    ['scheme only', 'Bearer'],
    ['scheme and space', 'Bearer '],
    ['token without scheme', TOKEN],
    ['Basic scheme', `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}`],
    ['one character changed', `Bearer ${TOKEN.slice(0, -1)}A`],
    ['prefix of the token', `Bearer ${TOKEN.slice(0, 10)}`],
    ['token with a suffix', `Bearer ${TOKEN}x`],
    ['two tokens', `Bearer ${TOKEN} ${TOKEN}`],
  ])('rejects %s', (_name, header) => {
    expect(checker.matches(header)).toBe(false);
  });

  it('never throws and matches only the exact token', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 300 }),
          fc
            .tuple(fc.string({ maxLength: 3 }), fc.string({ maxLength: 3 }))
            .map(([before, after]) => `${before}${TOKEN}${after}`),
        ),
        (candidate) => {
          const expected = candidate.replace(/^ +| +$/g, '') === TOKEN;
          expect(checker.matches(`Bearer ${candidate}`)).toBe(expected);
          expect(checker.matches(candidate)).toBe(false);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
