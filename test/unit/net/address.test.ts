import { describe, expect, it } from 'vitest';
import { canonicalAddress, formatHostPort } from '../../../src/net/address.js';

describe('formatHostPort', () => {
  const cases: Array<[string, number, string]> = [
    ['127.0.0.1', 80, '127.0.0.1:80'],
    ['::1', 443, '[::1]:443'],
    ['::ffff:7f00:1', 1080, '[::ffff:7f00:1]:1080'],
    ['::ffff:127.0.0.1', 1080, '[::ffff:127.0.0.1]:1080'],
    ['2001:db8::5', 104, '[2001:db8::5]:104'],
    ['fe80::1%eth0', 8080, '[fe80::1%eth0]:8080'],
    ['pacs.example.org', 104, 'pacs.example.org:104'],
    ['[::1]', 443, '[::1]:443'],
  ];

  for (const [host, port, expected] of cases) {
    it(`formats ${host} and ${port}`, () => {
      expect(formatHostPort(host, port)).toBe(expected);
    });
  }

  it('leaves the port after the last colon', () => {
    const text = formatHostPort('::ffff:7f00:1', 1080);
    expect(text.slice(text.lastIndexOf(':') + 1)).toBe('1080');
    expect(new URL(`http://${text}/`).port).toBe('1080');
  });
});

describe('canonicalAddress', () => {
  it.each([
    ['::ffff:7f00:1', '127.0.0.1'],
    ['::FFFF:192.0.2.1', '192.0.2.1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['192.0.2.1', '192.0.2.1'],
    ['files.example.org', 'files.example.org'],
  ])('writes %s as %s', (input, expected) => {
    expect(canonicalAddress(input)).toBe(expected);
  });
});
