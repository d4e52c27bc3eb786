import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type DecodedPacket,
  ipv4ToString,
  newDecodeStats,
  PacketDecoder,
} from '../../../src/capture/decode.js';
import type { Frame } from '../../../src/capture/frame.js';
import { hex } from './builders.js';

function frame(linkType: number, data: Buffer, extra: Partial<Frame> = {}): Frame {
  return {
    linkType,
    data,
    offset: 0,
    length: data.length,
    originalLength: data.length,
    ts: 1000,
    interfaceId: 0,
    fcsLength: 0,
    ...extra,
  };
}

/** The fields a test compares, copied out of the reused packet. */
function summary(p: DecodedPacket | null) {
  if (p === null) return null;
  return {
    ipVersion: p.ipVersion,
    src: p.ipVersion === 4 ? ipv4ToString(p.src4) : p.src6,
    dst: p.ipVersion === 4 ? ipv4ToString(p.dst4) : p.dst6,
    protocol: p.protocol,
    srcPort: p.srcPort,
    dstPort: p.dstPort,
    seq: p.seq,
    ack: p.ack,
    tcpFlags: p.tcpFlags,
    payload: p.data.toString('latin1', p.payloadOffset, p.payloadOffset + p.payloadLength),
    payloadTruncated: p.payloadTruncated,
    vlan: p.vlan,
  };
}

const IPV4_TCP = `
  45 00 002c          # IPv4, IHL 5, total length 44
  1234 4000           # id 0x1234, DF, offset 0
  40 06 0000          # TTL 64, TCP, checksum
  c0000201            # 192.0.2.1
  c6336402            # 198.51.100.2
  d431 0068           # ports 54321 -> 104 (DICOM)
  00000064            # seq 100
  000000c8            # ack 200
  50 18 ffff 0000 0000  # data offset 5, PSH|ACK, window, checksum, urgent
  41 42 43 44         # payload "ABCD"
`;
const EXPECTED_TCP = {
  ipVersion: 4,
  src: '192.0.2.1',
  dst: '198.51.100.2',
  protocol: 6,
  srcPort: 54321,
  dstPort: 104,
  seq: 100,
  ack: 200,
  tcpFlags: 0x18,
  payload: 'ABCD',
  payloadTruncated: 0,
  vlan: -1,
};

function decodeOne(linkType: number, data: Buffer, extra: Partial<Frame> = {}) {
  const stats = newDecodeStats();
  const decoder = new PacketDecoder(stats);
  return { packet: summary(decoder.decode(frame(linkType, data, extra))), stats };
}

describe('link layers', () => {
  const ethernet = hex(`
    020000000001 020000000002   # destination, source
    0800                        # IPv4
  `);

  it('decodes Ethernet', () => {
    const { packet } = decodeOne(1, Buffer.concat([ethernet, hex(IPV4_TCP)]));
    expect(packet).toEqual(EXPECTED_TCP);
  });

  it('decodes QinQ and keeps the outer VLAN id', () => {
    const data = Buffer.concat([
      hex(`
        020000000001 020000000002
        88a8 0064     # 802.1ad, VLAN 100
        8100 2005     # 802.1Q, priority 1, VLAN 5
        9100 0007     # old QinQ, VLAN 7
        0800
      `),
      hex(IPV4_TCP),
    ]);
    const { packet } = decodeOne(1, data);
    expect(packet).toEqual({ ...EXPECTED_TCP, vlan: 100 });
  });

  it('strips a declared Ethernet FCS', () => {
    const data = Buffer.concat([ethernet, hex(IPV4_TCP), hex('00 00 00 00'), hex('deadbeef')]);
    // Padding after the IP packet shows up as padding; the FCS must not.
    const { packet, stats } = decodeOne(1, data, { fcsLength: 4 });
    expect(packet?.payload).toBe('ABCD');
    expect(stats.ipPadded).toBe(1);
  });

  it('decodes Linux SLL and SLL2', () => {
    const sll = hex('0000 0304 0006 000000000000 0000 0800');
    const sll2 = hex('0800 0000 00000001 0304 00 06 0000000000000000');
    expect(decodeOne(113, Buffer.concat([sll, hex(IPV4_TCP)])).packet).toEqual(EXPECTED_TCP);
    expect(decodeOne(276, Buffer.concat([sll2, hex(IPV4_TCP)])).packet).toEqual(EXPECTED_TCP);
  });

  it('decodes raw IP under every raw link type', () => {
    for (const linkType of [101, 12, 14, 228]) {
      expect(decodeOne(linkType, hex(IPV4_TCP)).packet).toEqual(EXPECTED_TCP);
    }
  });

  it('decodes BSD null in either byte order and DLT_LOOP', () => {
    expect(decodeOne(0, Buffer.concat([hex('02000000'), hex(IPV4_TCP)])).packet).toEqual(
      EXPECTED_TCP,
    );
    expect(decodeOne(0, Buffer.concat([hex('00000002'), hex(IPV4_TCP)])).packet).toEqual(
      EXPECTED_TCP,
    );
    expect(decodeOne(108, Buffer.concat([hex('00000002'), hex(IPV4_TCP)])).packet).toEqual(
      EXPECTED_TCP,
    );
    for (const family of ['18000000', '1c000000', '1e000000']) {
      const { packet } = decodeOne(0, Buffer.concat([hex(family), hex(IPV6_UDP)]));
      expect(packet?.ipVersion).toBe(6);
    }
  });

  it('counts ARP as non-IP and unknown link types', () => {
    const arp = decodeOne(1, hex('ffffffffffff 020000000002 0806 0001 0800 0604 0001'));
    expect(arp.packet).toBeNull();
    expect(arp.stats.nonIp).toBe(1);
    const other = decodeOne(147, hex(IPV4_TCP));
    expect(other.packet).toBeNull();
    expect(other.stats.unsupportedLinkTypes.get(147)).toBe(1);
  });
});

const IPV6_UDP = `
  60000000            # version 6
  0010 11 40          # payload length 16, UDP, hop limit 64
  20010db8000000000000000000000001   # 2001:db8::1
  20010db8000100000000000000000000   # 2001:db8:1::
  0035 c000 0010 0000  # ports 53 -> 49152, length 16, checksum
  6162636465666768     # payload "abcdefgh"
`;

describe('IPv4', () => {
  it('skips options', () => {
    const data = hex(`
      47 00 0034  1234 0000  40 06 0000  c0000201 c6336402
      01010101 00000000     # options: NOP x4, EOL padding (IHL 7)
      d431 0068 00000064 000000c8 5018 ffff 0000 0000
      41424344
    `);
    expect(decodeOne(101, data).packet).toEqual(EXPECTED_TCP);
  });

  it('reports a capture cut short by the snap length', () => {
    const whole = hex(IPV4_TCP);
    const { packet, stats } = decodeOne(101, whole.subarray(0, whole.length - 3), {
      originalLength: whole.length,
    });
    expect(packet?.payload).toBe('A');
    expect(packet?.payloadTruncated).toBe(3);
    expect(stats.ipTruncated).toBe(1);
  });

  it('rejects malformed headers under named reasons', () => {
    const cases: Array<[string, Buffer]> = [
      ['ipv4-truncated-header', hex('4500 002c 1234')],
      ['ipv4-invalid-header-length', hex(IPV4_TCP.replace('45 00', '44 00'))],
      ['ipv4-invalid-total-length', hex(IPV4_TCP.replace('002c', '0010'))],
      ['tcp-invalid-data-offset', hex(IPV4_TCP.replace('50 18', '40 18'))],
      ['tcp-truncated-header', hex(IPV4_TCP.replace('50 18', 'f0 18'))],
    ];
    for (const [reason, data] of cases) {
      const { packet, stats } = decodeOne(101, data);
      expect(packet, reason).toBeNull();
      expect(stats.malformed.get(reason), reason).toBe(1);
    }
  });

  it('decodes TCP options and the NS flag', () => {
    const data = hex(`
      4500 0030 0001 0000 4006 0000 c0000201 c6336402
      d431 0068 00000064 000000c8
      71 02 ffff 0000 0000  # data offset 7, NS, SYN
      020405b4 01010402     # MSS, NOP, NOP, SAck permitted
    `);
    const { packet } = decodeOne(101, data);
    expect(packet?.tcpFlags).toBe(0x102);
    expect(packet?.payload).toBe('');
  });

  function fragment(id: number, offsetUnits: number, more: boolean, payload: Buffer): Buffer {
    const header = hex('4500 0000 0000 0000 4011 0000 c0000201 c6336402');
    header.writeUInt16BE(20 + payload.length, 2);
    header.writeUInt16BE(id, 4);
    header.writeUInt16BE((more ? 0x2000 : 0) | offsetUnits, 6);
    return Buffer.concat([header, payload]);
  }
  // UDP datagram: 8-byte header + 24 bytes payload, split into 16 + 16 bytes.
  const udp = Buffer.concat([hex('1000 2000 0020 0000'), Buffer.from('0123456789abcdefghijklmn')]);

  it('reassembles fragments in any order', () => {
    for (const order of [
      [0, 1],
      [1, 0],
    ]) {
      const stats = newDecodeStats();
      const decoder = new PacketDecoder(stats);
      const parts = [
        fragment(7, 0, true, udp.subarray(0, 16)),
        fragment(7, 2, false, udp.subarray(16)),
      ];
      const results = order.map((i) => summary(decoder.decode(frame(101, parts[i]!))));
      expect(results[0]).toBeNull();
      expect(results[1]?.payload).toBe('0123456789abcdefghijklmn');
      expect(stats.fragmentsReassembled).toBe(1);
      expect(decoder.pendingFragmentDatagrams).toBe(0);
    }
  });

  it('keeps the first bytes of overlapping fragments', () => {
    const stats = newDecodeStats();
    const decoder = new PacketDecoder(stats);
    const forged = Buffer.from(udp);
    forged.write('XXXXXXXX', 8 + 8); // bytes 16..23 of the datagram
    decoder.decode(frame(101, fragment(9, 0, true, udp.subarray(0, 24))));
    const result = summary(decoder.decode(frame(101, fragment(9, 2, false, forged.subarray(16)))));
    expect(result?.payload).toBe('0123456789abcdefghijklmn');
    expect(stats.fragmentOverlaps).toBe(1);
  });

  it('drops fragments after the timeout', () => {
    const stats = newDecodeStats();
    const decoder = new PacketDecoder(stats, { fragmentTimeoutMs: 500 });
    decoder.decode(frame(101, fragment(3, 0, true, udp.subarray(0, 16)), { ts: 1000 }));
    const late = decoder.decode(frame(101, fragment(3, 2, false, udp.subarray(16)), { ts: 1600 }));
    expect(late).toBeNull();
    expect(stats.fragmentsDropped).toBe(1);
    expect(stats.malformed.get('ip-fragment-timeout')).toBe(1);
  });

  it('evicts the oldest datagram at a lowered buffer limit', () => {
    const stats = newDecodeStats();
    const decoder = new PacketDecoder(stats, { maxFragmentBuffers: 2 });
    for (const id of [1, 2, 3])
      decoder.decode(frame(101, fragment(id, 0, true, udp.subarray(0, 16))));
    expect(decoder.pendingFragmentDatagrams).toBe(2);
    expect(stats.malformed.get('ip-fragment-buffers-exceeded')).toBe(1);
    const first = decoder.decode(frame(101, fragment(1, 2, false, udp.subarray(16))));
    expect(first).toBeNull();
    const third = decoder.decode(frame(101, fragment(3, 2, false, udp.subarray(16))));
    expect(third).not.toBeNull();
  });

  it('drops datagrams above a lowered byte limit', () => {
    const stats = newDecodeStats();
    const decoder = new PacketDecoder(stats, { maxFragmentBytes: 20 });
    decoder.decode(frame(101, fragment(1, 0, true, udp.subarray(0, 16))));
    decoder.decode(frame(101, fragment(2, 0, true, udp.subarray(0, 16))));
    expect(decoder.pendingFragmentDatagrams).toBe(1);
    expect(stats.malformed.get('ip-fragment-bytes-exceeded')).toBe(1);
  });
});

describe('IPv6', () => {
  it('decodes UDP with compressed addresses', () => {
    const { packet } = decodeOne(101, hex(IPV6_UDP));
    expect(packet).toEqual({
      ipVersion: 6,
      src: '2001:db8::1',
      dst: '2001:db8:1::',
      protocol: 17,
      srcPort: 53,
      dstPort: 49152,
      seq: 0,
      ack: 0,
      tcpFlags: 0,
      payload: 'abcdefgh',
      payloadTruncated: 0,
      vlan: -1,
    });
  });

  it('walks hop-by-hop, routing, destination and AH headers', () => {
    const data = hex(`
      60000000 0034 00 40                       # payload length 52, next: hop-by-hop
      00000000000000000000000000000001          # ::1
      00000000000000000000ffffc0000201          # ::ffff:192.0.2.1
      2b 00 0000 00000000                       # hop-by-hop (8 bytes), next: routing
      3c 00 0000 00000000                       # routing (8 bytes), next: destination
      33 00 0000 00000000                       # destination options (8), next: AH
      11 01 0000 00000001 00000001              # AH, (1 + 2) * 4 = 12 bytes, next: UDP
      0035 0035 0010 0000 6162636465666768      # UDP 53 -> 53, "abcdefgh"
    `);
    const { packet } = decodeOne(101, data);
    expect(packet?.src).toBe('::1');
    expect(packet?.dst).toBe('::ffff:192.0.2.1');
    expect(packet?.payload).toBe('abcdefgh');
  });

  it('reassembles fragments', () => {
    const udp = Buffer.concat([
      hex('0035 0035 0020 0000'),
      Buffer.from('0123456789abcdefghijklmn'),
    ]);
    function fragment(offset: number, more: boolean, payload: Buffer) {
      const header = hex(`
        60000000 0000 2c 40
        20010db8000000000000000000000001 20010db8000000000000000000000002
        11 00 0000 0000abcd     # fragment: next UDP, id 0xabcd
      `);
      header.writeUInt16BE(8 + payload.length, 4);
      header.writeUInt16BE(offset | (more ? 1 : 0), 42);
      return Buffer.concat([header, payload]);
    }
    const stats = newDecodeStats();
    const decoder = new PacketDecoder(stats);
    expect(decoder.decode(frame(101, fragment(16, false, udp.subarray(16))))).toBeNull();
    const packet = summary(decoder.decode(frame(101, fragment(0, true, udp.subarray(0, 16)))));
    expect(packet?.payload).toBe('0123456789abcdefghijklmn');
    expect(stats.fragmentsReassembled).toBe(1);
  });
});

describe('decoder robustness', () => {
  it('never throws on random frames of any link type', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0, 1, 12, 14, 101, 108, 113, 228, 229, 276),
        fc.uint8Array({ maxLength: 200 }),
        fc.integer({ min: 0, max: 4 }),
        (linkType, bytes, fcsLength) => {
          const decoder = new PacketDecoder(newDecodeStats());
          const data = Buffer.from(bytes);
          const packet = decoder.decode(frame(linkType, data, { fcsLength }));
          if (packet !== null) {
            expect(packet.payloadOffset + packet.payloadLength).toBeLessThanOrEqual(
              packet.data.length,
            );
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('never throws on mutated valid packets', () => {
    const base = hex(IPV4_TCP);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), {
          maxLength: 6,
        }),
        (mutations) => {
          const data = Buffer.from(base);
          for (const [at, value] of mutations) data[at] = value;
          const decoder = new PacketDecoder(newDecodeStats());
          const packet = decoder.decode(frame(101, data));
          if (packet !== null) {
            expect(packet.payloadOffset + packet.payloadLength).toBeLessThanOrEqual(data.length);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
