import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isKnownUser } from '../../../src/proxy/socks5.js';

const USERS = [
  { username: 'vendor', password: 's3cret' },
  { username: 'backup', password: 'another-pass' },
];

describe('isKnownUser', () => {
  it('accepts each configured pair', () => {
    for (const user of USERS) expect(isKnownUser(USERS, { ...user })).toBe(true);
  });

  it('rejects mixed and altered pairs', () => {
    const cases = [
      { username: 'vendor', password: 'another-pass' },
      { username: 'backup', password: 's3cret' },
      { username: 'vendor', password: 's3cre' },
      { username: 'vendor', password: 's3cret ' },
      { username: 'Vendor', password: 's3cret' },
      { username: '', password: '' },
    ];
    for (const offered of cases) expect(isKnownUser(USERS, offered)).toBe(false);
  });

  it('rejects everyone with no users', () => {
    expect(isKnownUser([], { username: 'vendor', password: 's3cret' })).toBe(false);
  });

  it('matches plain equality on any strings', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (username, password) => {
        const expected = USERS.some(
          (user) => user.username === username && user.password === password,
        );
        expect(isKnownUser(USERS, { username, password })).toBe(expected);
      }),
    );
  });
});
