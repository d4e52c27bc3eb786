import { describe, expect, it } from 'vitest';
import { CidrSet } from '../../../src/policy/cidr.js';
import { networksOverlap } from '../../../src/proxy/gateway.js';

describe('networksOverlap', () => {
  const cases: Array<[string[], string[], boolean]> = [
    [
      ['127.0.0.0/8', '::1/128'],
      ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
      false,
    ],
    [['127.0.0.0/8'], ['127.0.0.1/32'], true],
    [['127.0.0.1/32'], ['127.0.0.0/8'], true],
    [['10.20.0.0/16'], ['10.20.4.0/24'], true],
    [['10.20.0.0/16'], ['10.21.0.0/16'], false],
    [['10.20.4.7'], ['10.20.0.0/16'], true],
    [['2001:db8:20::/48'], ['2001:db8::/32'], true],
    [['2001:db8:20::/48'], ['2001:db8:21::/48'], false],
    [['::ffff:10.0.0.0/104'], ['10.1.0.0/16'], true],
    [['10.0.0.0/8'], [], false],
  ];
  for (const [first, second, expected] of cases) {
    it(`${first.join(',')} and ${second.join(',') || 'nothing'}`, () => {
      const a = CidrSet.parse(first);
      const b = CidrSet.parse(second);
      expect(networksOverlap(a, b)).toBe(expected);
      expect(networksOverlap(b, a)).toBe(expected);
    });
  }
});
