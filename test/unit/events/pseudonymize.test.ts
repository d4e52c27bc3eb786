import { describe, expect, test, vi } from 'vitest';
import {
  PSEUDONYM_KEY_ENV,
  Pseudonymizer,
  PseudonymKeyError,
  parsePseudonymKey,
} from '../../../src/events/pseudonymize.js';

const KEY_A = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');
const KEY_B = Buffer.from('fedcba9876543210fedcba9876543210', 'hex');

describe('Pseudonymizer', () => {
  test('same key gives the same pseudonym', () => {
    const first = new Pseudonymizer(KEY_A, false).value('patient-id', 'PAT-0001');
    const second = new Pseudonymizer(KEY_A, false).value('patient-id', 'PAT-0001');
    expect(first).toBe(second);
    expect(first).toMatch(/^hmac-sha256:[0-9a-f]{32}$/);
  });

  test('output is the keyed HMAC of kind and value', async () => {
    const { createHmac } = await import('node:crypto');
    const expected = createHmac('sha256', KEY_A).update('patient-id\0PAT-0001').digest('hex');
    expect(new Pseudonymizer(KEY_A, false).value('patient-id', 'PAT-0001')).toBe(
      `hmac-sha256:${expected.slice(0, 32)}`,
    );
  });

  test('different keys give different pseudonyms', () => {
    const a = new Pseudonymizer(KEY_A, false).value('patient-id', 'PAT-0001');
    const b = new Pseudonymizer(KEY_B, false).value('patient-id', 'PAT-0001');
    expect(a).not.toBe(b);
  });

  test('kind is part of the pseudonym', () => {
    const p = new Pseudonymizer(KEY_A, false);
    expect(p.value('patient-id', 'DOE^JANE')).not.toBe(p.value('patient-name', 'DOE^JANE'));
  });

  test('clear value never appears by default', () => {
    const value = new Pseudonymizer(KEY_A, false).value('patient-name', 'DOE^JANE');
    expect(value).not.toContain('DOE');
    expect(value).not.toContain('JANE');
  });

  test('DICOM padding does not change the pseudonym', () => {
    const p = new Pseudonymizer(KEY_A, false);
    expect(p.value('patient-id', 'PAT-0001 ')).toBe(p.value('patient-id', 'PAT-0001'));
  });

  test('includeClear returns the clear value', () => {
    expect(new Pseudonymizer(KEY_A, true).value('patient-name', 'DOE^JANE ')).toBe('DOE^JANE');
  });

  test('random key warns once and does not correlate', () => {
    const warning = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    const first = new Pseudonymizer(null, false);
    const second = new Pseudonymizer(null, false);
    expect(first.randomKey).toBe(true);
    expect(first.value('patient-id', 'X')).not.toBe(second.value('patient-id', 'X'));
    expect(warning).toHaveBeenCalledTimes(1);
    expect(String(warning.mock.calls[0]?.[0])).toContain(PSEUDONYM_KEY_ENV);
    warning.mockRestore();
  });

  test('short key is rejected', () => {
    expect(() => new Pseudonymizer(Buffer.alloc(8), false)).toThrow(PseudonymKeyError);
  });
});

describe('key from the environment', () => {
  test('hex, base64 and text forms', () => {
    expect(parsePseudonymKey('hex:0123456789abcdef0123456789abcdef')).toEqual(KEY_A);
    expect(parsePseudonymKey(`base64:${KEY_A.toString('base64')}`)).toEqual(KEY_A);
    expect(parsePseudonymKey('a long enough passphrase')).toEqual(
      Buffer.from('a long enough passphrase'),
    );
  });

  test('bad keys name the problem', () => {
    expect(() => parsePseudonymKey('hex:xyz')).toThrow('pseudonym key after "hex:" is not hex');
    expect(() => parsePseudonymKey('short')).toThrow(
      'pseudonym key length 5 bytes is below the minimum 16',
    );
  });

  test('fromEnv uses TOLLGATE_PSEUDONYM_KEY', () => {
    const env = { [PSEUDONYM_KEY_ENV]: 'hex:0123456789abcdef0123456789abcdef' };
    const fromEnv = Pseudonymizer.fromEnv(false, env);
    expect(fromEnv.randomKey).toBe(false);
    expect(fromEnv.value('patient-id', 'P1')).toBe(
      new Pseudonymizer(KEY_A, false).value('patient-id', 'P1'),
    );
  });
});
