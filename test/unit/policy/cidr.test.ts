import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  CidrParseError,
  CidrSet,
  parseCidr,
  parseIpv4,
  parseIpv6,
} from '../../../src/policy/cidr.js';

describe('CidrSet IPv4', () => {
  const set = CidrSet.parse(['10.0.0.0/8', '192.168.1.0/24', '198.51.100.7/32', '172.16.0.0/12']);

  test.each([
    ['10.0.0.0', true],
    ['10.255.255.255', true],
    ['11.0.0.0', false],
    ['9.255.255.255', false],
    ['192.168.1.200', true],
    ['192.168.2.1', false],
    ['198.51.100.7', true],
    ['198.51.100.8', false],
    ['172.31.255.255', true],
    ['172.32.0.0', false],
  ])('%s -> %s', (ip, expected) => {
    expect(set.has(ip)).toBe(expected);
  });

  test('/0 contains every IPv4 address and no IPv6', () => {
    const all = CidrSet.parse(['0.0.0.0/0']);
    expect(all.has('0.0.0.0')).toBe(true);
    expect(all.has('255.255.255.255')).toBe(true);
    expect(all.has('2001:db8::1')).toBe(false);
  });

  test('bare address is a /32', () => {
    const single = CidrSet.parse(['203.0.113.9']);
    expect(single.has('203.0.113.9')).toBe(true);
    expect(single.has('203.0.113.10')).toBe(false);
  });

  test('text that is no address is not a member', () => {
    const all = CidrSet.parse(['0.0.0.0/0', '::/0']);
    for (const text of [
      '',
      'localhost',
      '1.2.3',
      '1.2.3.4.5',
      '256.1.1.1',
      '01.2.3.4',
      '1.2.3.4 ',
    ]) {
      expect(all.has(text)).toBe(false);
    }
  });
});

describe('CidrSet IPv6', () => {
  const set = CidrSet.parse(['2001:db8::/32', 'fc00::/7', '::1/128', 'fe80::/10']);

  test.each([
    ['2001:db8::1', true],
    ['2001:DB8:ffff::1', true],
    ['2001:db9::1', false],
    ['fd12:3456::1', true],
    ['fe00::1', false],
    ['::1', true],
    ['::2', false],
    ['fe80::1%eth0', true],
    ['[2001:db8::5]', true],
  ])('%s -> %s', (ip, expected) => {
    expect(set.has(ip)).toBe(expected);
  });

  test('/0 contains every IPv6 address and no IPv4', () => {
    const all = CidrSet.parse(['::/0']);
    expect(all.has('::')).toBe(true);
    expect(all.has('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')).toBe(true);
    expect(all.has('10.0.0.1')).toBe(false);
  });

  test('/128 boundary', () => {
    const single = CidrSet.parse(['2001:db8::ff/128']);
    expect(single.has('2001:db8::ff')).toBe(true);
    expect(single.has('2001:db8::fe')).toBe(false);
    expect(single.has('2001:db8:0:0:0:0:0:ff')).toBe(true);
  });
});

describe('IPv4-mapped IPv6', () => {
  test('mapped address matches an IPv4 network', () => {
    const set = CidrSet.parse(['10.0.0.0/8']);
    expect(set.has('::ffff:10.1.2.3')).toBe(true);
    expect(set.has('::ffff:0a01:0203')).toBe(true);
    expect(set.has('::ffff:11.1.2.3')).toBe(false);
  });

  test('mapped network matches plain IPv4', () => {
    const set = CidrSet.parse(['::ffff:192.0.2.0/120']);
    expect(set.has('192.0.2.77')).toBe(true);
    expect(set.has('192.0.3.1')).toBe(false);
  });
});

describe('parseCidr errors', () => {
  test.each([
    ['10.0.0.1/8', 'host bits are set; the network is 10.0.0.0/8'],
    ['10.0.0.0/33', 'prefix length 33 exceeds the maximum 32 for IPv4'],
    ['::/129', 'prefix length 129 exceeds the maximum 128 for IPv6'],
    ['10.0.0.0/', 'prefix length "" is not a number'],
    ['10.0.0.0/x', 'prefix length "x" is not a number'],
    ['example.org/24', 'not an IPv4 or IPv6 address'],
    ['2001:db8::1/32', 'host bits are set for prefix length 32'],
    ['300.0.0.0/8', 'not an IPv4 or IPv6 address'],
  ])('%s', (text, reason) => {
    expect(parseCidr(text)).toBe(reason);
  });

  test('CidrSet.parse names the entry', () => {
    expect(() => CidrSet.parse(['10.0.0.0/8', 'nope'])).toThrow(CidrParseError);
    try {
      CidrSet.parse(['10.0.0.0/8', 'nope']);
    } catch (error) {
      expect((error as CidrParseError).index).toBe(1);
      expect((error as CidrParseError).message).toContain('"nope"');
    }
  });
});

describe('address parsers', () => {
  test('IPv6 forms', () => {
    expect(parseIpv6('::')).toBe(0n);
    expect(parseIpv6('::1')).toBe(1n);
    expect(parseIpv6('1::')).toBe(1n << 112n);
    expect(parseIpv6('1:2:3:4:5:6:7:8')?.toString(16)).toBe('10002000300040005000600070008');
    expect(parseIpv6('::ffff:1.2.3.4')?.toString(16)).toBe('ffff01020304');
    expect(parseIpv6('1:2:3:4:5:6:1.2.3.4')?.toString(16)).toBe('10002000300040005000601020304');
    expect(parseIpv6('1:::2')).toBeNull();
  });

  test('IPv4 agrees with a reference for random addresses', () => {
    fc.assert(
      fc.property(fc.ipV4(), (ip) => {
        const reference = ip.split('.').reduce((value, octet) => value * 256 + Number(octet), 0);
        expect(parseIpv4(ip)).toBe(reference);
      }),
    );
  });

  test('has() never throws on arbitrary text', () => {
    const set = CidrSet.parse(['10.0.0.0/8', '2001:db8::/32']);
    fc.assert(
      fc.property(fc.string(), (text) => {
        expect(typeof set.has(text)).toBe('boolean');
      }),
    );
  });

  test('IPv6 membership agrees with a prefix comparison', () => {
    const set = CidrSet.parse(['2001:db8:1234::/48']);
    fc.assert(
      fc.property(fc.ipV6(), (ip) => {
        const value = parseIpv6(ip);
        if (value === null) return;
        const inside = value >> 80n === 0x20010db81234n;
        const mapped = value >> 32n === 0xffffn;
        expect(set.has(ip)).toBe(inside && !mapped);
      }),
    );
  });
});
