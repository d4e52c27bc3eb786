import { describe, expect, it } from 'vitest';
import { isLoopbackHost } from '../../../src/admin/loopback.js';

describe('isLoopbackHost', () => {
  it.each([
    '127.0.0.1',
    '127.0.0.2',
    '127.255.255.254',
    '::1',
    '0:0:0:0:0:0:0:1',
    '0000::0001',
    '::ffff:127.0.0.1',
    'localhost',
    'LOCALHOST',
  ])('accepts %s', (host) => {
    expect(isLoopbackHost(host)).toBe(true);
  });

  it.each([
    '0.0.0.0',
    '::',
    '10.20.0.1',
    '192.0.2.10',
    '128.0.0.1',
    '2001:db8::1',
    '::2',
    '1::1',
    'fe80::1',
    '::ffff:192.0.2.1',
    'admin.example.org',
    'localhost.example.org',
    '127.0.0.1.example.org',
  ])('rejects %s', (host) => {
    expect(isLoopbackHost(host)).toBe(false);
  });
});
