import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, test } from 'vitest';
import { communityId, IPPROTO_TCP, IPPROTO_UDP } from '../../../src/events/community-id.js';
import { parseIpv6 } from '../../../src/policy/cidr.js';

describe('communityId', () => {
  // tshark 4.0's communityid dissector gives this id for the flow (text2pcap-built packet).
  test('published TCP vector', () => {
    expect(communityId(IPPROTO_TCP, '128.232.110.120', 34855, '66.35.250.204', 80)).toBe(
      '1:LQU9qZlK+B5F3KDmev6m5PMibrg=',
    );
  });

  test('both directions give the same id', () => {
    const forward = communityId(IPPROTO_TCP, '10.0.0.1', 50000, '192.0.2.1', 104);
    const reverse = communityId(IPPROTO_TCP, '192.0.2.1', 104, '10.0.0.1', 50000);
    expect(forward).toBe(reverse);
  });

  test('same address orders by port', () => {
    const a = communityId(IPPROTO_TCP, '127.0.0.1', 4000, '127.0.0.1', 5000);
    const b = communityId(IPPROTO_TCP, '127.0.0.1', 5000, '127.0.0.1', 4000);
    expect(a).toBe(b);
  });

  test('seed changes the id', () => {
    const plain = communityId(IPPROTO_TCP, '10.0.0.1', 1, '10.0.0.2', 2);
    const seeded = communityId(IPPROTO_TCP, '10.0.0.1', 1, '10.0.0.2', 2, 1);
    expect(seeded).not.toBe(plain);
  });

  test('IPv4-mapped address hashes as IPv4', () => {
    expect(communityId(IPPROTO_TCP, '::ffff:128.232.110.120', 34855, '66.35.250.204', 80)).toBe(
      '1:LQU9qZlK+B5F3KDmev6m5PMibrg=',
    );
  });

  test('invalid or mixed addresses give null', () => {
    expect(communityId(IPPROTO_TCP, 'host', 1, '10.0.0.1', 2)).toBeNull();
    expect(communityId(IPPROTO_TCP, '10.0.0.1', 1, '2001:db8::1', 2)).toBeNull();
  });
});

const hasTools =
  spawnSync('tshark', ['--version']).status === 0 &&
  spawnSync('text2pcap', ['--help']).status !== null;

// Compares random flows against tshark's communityid dissector, an independent implementation.
// text2pcap replaces the unspecified addresses (0.0.0.0, ::) with its own defaults, so they are
// left out of the generated flows.
describe.skipIf(!hasTools)('communityId agrees with tshark', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-cid-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function tsharkId(
    family: 4 | 6,
    transport: 'tcp' | 'udp',
    source: string,
    sourcePort: number,
    destination: string,
    destinationPort: number,
  ): string {
    const hexdump = join(dir, 'packet.txt');
    const pcap = join(dir, 'packet.pcap');
    writeFileSync(hexdump, '0000 74 6f 6c 6c\n');
    const transportFlag = transport === 'tcp' ? '-T' : '-u';
    execFileSync('text2pcap', [
      '-q',
      `-${family}`,
      `${source},${destination}`,
      transportFlag,
      `${sourcePort},${destinationPort}`,
      hexdump,
      pcap,
    ]);
    const output = execFileSync(
      'tshark',
      ['-r', pcap, '--enable-protocol', 'communityid', '-T', 'fields', '-e', 'communityid'],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    return output.toString().trim();
  }

  const port = fc.integer({ min: 1, max: 65535 });

  test('random IPv4 TCP and UDP flows', () => {
    fc.assert(
      fc.property(fc.ipV4(), port, fc.ipV4(), port, fc.boolean(), (src, sport, dst, dport, tcp) => {
        fc.pre(src !== '0.0.0.0' && dst !== '0.0.0.0');
        const expected = tsharkId(4, tcp ? 'tcp' : 'udp', src, sport, dst, dport);
        expect(communityId(tcp ? IPPROTO_TCP : IPPROTO_UDP, src, sport, dst, dport)).toBe(expected);
      }),
      { numRuns: 12 },
    );
  });

  test('random IPv6 TCP flows', () => {
    fc.assert(
      fc.property(fc.ipV6(), port, fc.ipV6(), port, (src, sport, dst, dport) => {
        fc.pre(!src.includes('.') && !dst.includes('.'));
        // Unspecified addresses are text2pcap defaults; mapped ones are hashed as IPv4 on purpose.
        const usable = (ip: string) => parseIpv6(ip) !== 0n && parseIpv6(ip)! >> 32n !== 0xffffn;
        fc.pre(usable(src) && usable(dst));
        const expected = tsharkId(6, 'tcp', src, sport, dst, dport);
        expect(communityId(IPPROTO_TCP, src, sport, dst, dport)).toBe(expected);
      }),
      { numRuns: 12 },
    );
  });
});
