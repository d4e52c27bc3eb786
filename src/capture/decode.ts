// Link, IP and TCP/UDP header decoding for captured frames, into one reused DecodedPacket.
// Nothing here throws on malformed input: each reject is counted under a named reason.

import {
  DEFAULT_FRAGMENT_LIMITS,
  type FragmentLimits,
  FragmentReassembler,
  type FragmentStats,
} from './fragments.js';
import type { Frame } from './frame.js';
import { formatIpv6 } from './ipv6-text.js';

export interface DecodedPacket {
  ts: number;
  ipVersion: 4 | 6;
  /** IPv4 source as uint32, valid when ipVersion is 4. */
  src4: number;
  dst4: number;
  /** IPv6 source in canonical compressed text (RFC 5952), valid when ipVersion is 6. */
  src6: string;
  dst6: string;
  /** 6 for TCP, 17 for UDP. */
  protocol: number;
  srcPort: number;
  dstPort: number;
  /** TCP sequence and acknowledgement numbers (uint32), 0 for UDP. */
  seq: number;
  ack: number;
  /** TCP flags with NS in bit 8, 0 for UDP. */
  tcpFlags: number;
  /** Payload at data[payloadOffset, payloadOffset + payloadLength). */
  data: Buffer;
  payloadOffset: number;
  payloadLength: number;
  /** Payload bytes the IP header declares but the capture cut off (snap length). */
  payloadTruncated: number;
  /** Outermost VLAN id, or -1 when untagged. */
  vlan: number;
}

export interface DecodeStats extends FragmentStats {
  /** Frames decoded into a TCP or UDP packet. */
  decoded: number;
  /** Frames carrying something other than IPv4 or IPv6 (ARP, LLDP, ...). */
  nonIp: number;
  /** IP packets carrying something other than TCP or UDP (ICMP, ...). */
  nonTcpUdp: number;
  /** Frames of a link type this decoder does not read, by link type. */
  unsupportedLinkTypes: Map<number, number>;
  /** IP packets shorter in the capture than their header declares. */
  ipTruncated: number;
  /** Frames with bytes after the IP packet (Ethernet minimum-size padding). */
  ipPadded: number;
  /** Frames rejected, by reason. */
  malformed: Map<string, number>;
}

export interface DecoderLimits extends Partial<FragmentLimits> {}

export function newDecodeStats(): DecodeStats {
  return {
    decoded: 0,
    nonIp: 0,
    nonTcpUdp: 0,
    unsupportedLinkTypes: new Map(),
    ipTruncated: 0,
    ipPadded: 0,
    malformed: new Map(),
    fragmentsReassembled: 0,
    fragmentsDropped: 0,
    fragmentOverlaps: 0,
  };
}

export function ipv4ToString(addr: number): string {
  return `${addr >>> 24}.${(addr >>> 16) & 0xff}.${(addr >>> 8) & 0xff}.${addr & 0xff}`;
}

const LINKTYPE_NULL = 0;
const LINKTYPE_ETHERNET = 1;
const LINKTYPE_RAW = 101;
const DLT_RAW_COMMON = 12; // DLT_RAW on most systems
const DLT_RAW_OPENBSD = 14;
const LINKTYPE_LOOP = 108;
const LINKTYPE_LINUX_SLL = 113;
const LINKTYPE_IPV4 = 228;
const LINKTYPE_IPV6 = 229;
const LINKTYPE_LINUX_SLL2 = 276;

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const ETHERTYPE_VLAN = 0x8100;
const ETHERTYPE_QINQ = 0x88a8;
const ETHERTYPE_QINQ_OLD = 0x9100;
const MAX_VLAN_TAGS = 8;

/** BSD address families that mean IPv6 (NetBSD/OpenBSD 24, FreeBSD 28, macOS 30). */
const AF_INET = 2;
const AF_INET6_VALUES = new Set([24, 28, 30]);

const IPPROTO_HOPOPTS = 0;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const IPPROTO_ROUTING = 43;
const IPPROTO_FRAGMENT = 44;
const IPPROTO_AH = 51;
const IPPROTO_NONE = 59;
const IPPROTO_DSTOPTS = 60;
const IPPROTO_MOBILITY = 135;
const MAX_IPV6_EXTENSION_HEADERS = 16;

export class PacketDecoder {
  private readonly packet: DecodedPacket = {
    ts: 0,
    ipVersion: 4,
    src4: 0,
    dst4: 0,
    src6: '',
    dst6: '',
    protocol: 0,
    srcPort: 0,
    dstPort: 0,
    seq: 0,
    ack: 0,
    tcpFlags: 0,
    data: Buffer.alloc(0),
    payloadOffset: 0,
    payloadLength: 0,
    payloadTruncated: 0,
    vlan: -1,
  };
  private readonly fragments: FragmentReassembler;
  private readonly lastSrc6 = Buffer.alloc(16);
  private readonly lastDst6 = Buffer.alloc(16);
  private lastSrc6Text = '::';
  private lastDst6Text = '::';

  constructor(
    private readonly stats: DecodeStats,
    limits: DecoderLimits = {},
  ) {
    this.fragments = new FragmentReassembler(stats, { ...DEFAULT_FRAGMENT_LIMITS, ...limits });
  }

  /** Datagrams waiting for more fragments. */
  get pendingFragmentDatagrams(): number {
    return this.fragments.pendingDatagrams;
  }

  /** Decodes link, IP and TCP/UDP headers; returns the reused DecodedPacket or null when the frame carries nothing the engine uses (counted in stats). */
  decode(frame: Frame): DecodedPacket | null {
    const buf = frame.data;
    let end = frame.offset + frame.length;
    if (frame.fcsLength > 0) {
      // The FCS is the last bytes on the wire; a short capture may have cut some of it.
      end = Math.min(end, frame.offset + Math.max(0, frame.originalLength - frame.fcsLength));
    }
    this.packet.ts = frame.ts;
    this.packet.vlan = -1;
    return this.decodeLink(frame.linkType, buf, frame.offset, end);
  }

  private malformed(reason: string): null {
    this.stats.malformed.set(reason, (this.stats.malformed.get(reason) ?? 0) + 1);
    return null;
  }

  private decodeLink(
    linkType: number,
    buf: Buffer,
    start: number,
    end: number,
  ): DecodedPacket | null {
    switch (linkType) {
      case LINKTYPE_ETHERNET:
        return this.decodeEthernet(buf, start, end);
      case LINKTYPE_LINUX_SLL:
        // pkttype u16 | ARPHRD u16 | address length u16 | address 8 | protocol u16
        if (end - start < 16) return this.malformed('sll-truncated-header');
        return this.decodeEthertype(buf.readUInt16BE(start + 14), buf, start + 16, end);
      case LINKTYPE_LINUX_SLL2:
        // protocol u16 | reserved u16 | ifindex u32 | ARPHRD u16 | pkttype u8 | addr len u8 | address 8
        if (end - start < 20) return this.malformed('sll2-truncated-header');
        return this.decodeEthertype(buf.readUInt16BE(start), buf, start + 20, end);
      case LINKTYPE_RAW:
      case DLT_RAW_COMMON:
      case DLT_RAW_OPENBSD:
      case LINKTYPE_IPV4:
      case LINKTYPE_IPV6:
        return this.decodeRawIp(buf, start, end);
      case LINKTYPE_NULL:
      case LINKTYPE_LOOP: {
        if (end - start < 4) return this.malformed('loopback-truncated-header');
        // DLT_NULL stores the family in the writer's byte order; values fit in 16 bits.
        let family = buf.readUInt32BE(start);
        if (linkType === LINKTYPE_NULL && family > 0xffff) family = buf.readUInt32LE(start);
        if (family === AF_INET) return this.decodeIpv4(buf, start + 4, end);
        if (AF_INET6_VALUES.has(family)) return this.decodeIpv6(buf, start + 4, end);
        this.stats.nonIp++;
        return null;
      }
      default: {
        const counts = this.stats.unsupportedLinkTypes;
        counts.set(linkType, (counts.get(linkType) ?? 0) + 1);
        return null;
      }
    }
  }

  private decodeEthernet(buf: Buffer, start: number, end: number): DecodedPacket | null {
    // destination 6 | source 6 | EtherType u16, then any 802.1Q/802.1ad tags: TCI u16 | EtherType u16
    if (end - start < 14) return this.malformed('ethernet-truncated-header');
    let etherType = buf.readUInt16BE(start + 12);
    let at = start + 14;
    for (let tags = 0; isVlanTag(etherType); tags++) {
      if (tags === MAX_VLAN_TAGS) return this.malformed('vlan-too-many-tags');
      if (end - at < 4) return this.malformed('vlan-truncated-tag');
      if (this.packet.vlan < 0) this.packet.vlan = buf.readUInt16BE(at) & 0x0fff;
      etherType = buf.readUInt16BE(at + 2);
      at += 4;
    }
    return this.decodeEthertype(etherType, buf, at, end);
  }

  private decodeEthertype(
    etherType: number,
    buf: Buffer,
    start: number,
    end: number,
  ): DecodedPacket | null {
    if (etherType === ETHERTYPE_IPV4) return this.decodeIpv4(buf, start, end);
    if (etherType === ETHERTYPE_IPV6) return this.decodeIpv6(buf, start, end);
    if (isVlanTag(etherType)) {
      // Linux cooked captures keep a VLAN tag when the kernel did not strip it.
      if (end - start < 4) return this.malformed('vlan-truncated-tag');
      if (this.packet.vlan < 0) this.packet.vlan = buf.readUInt16BE(start) & 0x0fff;
      const inner = buf.readUInt16BE(start + 2);
      if (isVlanTag(inner)) return this.malformed('vlan-too-many-tags');
      return this.decodeEthertype(inner, buf, start + 4, end);
    }
    this.stats.nonIp++;
    return null;
  }

  private decodeRawIp(buf: Buffer, start: number, end: number): DecodedPacket | null {
    if (end <= start) return this.malformed('ip-truncated-header');
    const version = buf[start]! >>> 4;
    if (version === 4) return this.decodeIpv4(buf, start, end);
    if (version === 6) return this.decodeIpv6(buf, start, end);
    return this.malformed('ip-unknown-version');
  }

  /** Returns the end of the IP packet within the capture, counting truncation and padding. */
  private ipEnd(start: number, declaredLength: number, end: number): number {
    const declaredEnd = start + declaredLength;
    this.packet.payloadTruncated = 0;
    if (declaredEnd > end) {
      this.stats.ipTruncated++;
      this.packet.payloadTruncated = declaredEnd - end;
      return end;
    }
    if (declaredEnd < end) this.stats.ipPadded++;
    return declaredEnd;
  }

  private decodeIpv4(buf: Buffer, start: number, end: number): DecodedPacket | null {
    // RFC 791: version:4 IHL:4 | TOS | total length u16 | id u16 | flags:3 offset:13 | TTL |
    // protocol | checksum u16 | source u32 | destination u32 | options
    if (end - start < 20) return this.malformed('ipv4-truncated-header');
    const versionIhl = buf[start]!;
    if (versionIhl >>> 4 !== 4) return this.malformed('ipv4-wrong-version');
    const headerLength = (versionIhl & 0x0f) * 4;
    if (headerLength < 20) return this.malformed('ipv4-invalid-header-length');
    if (headerLength > end - start) return this.malformed('ipv4-truncated-header');
    const totalLength = buf.readUInt16BE(start + 2);
    if (totalLength < headerLength) return this.malformed('ipv4-invalid-total-length');
    const ipEnd = this.ipEnd(start, totalLength, end);

    const packet = this.packet;
    packet.ipVersion = 4;
    packet.src4 = buf.readUInt32BE(start + 12);
    packet.dst4 = buf.readUInt32BE(start + 16);
    const protocol = buf[start + 9]!;
    const flagsOffset = buf.readUInt16BE(start + 6);
    const more = (flagsOffset & 0x2000) !== 0;
    const fragmentOffset = (flagsOffset & 0x1fff) * 8;
    if (!more && fragmentOffset === 0) {
      return this.decodeTransport(protocol, buf, start + headerLength, ipEnd);
    }

    if (protocol !== IPPROTO_TCP && protocol !== IPPROTO_UDP) {
      this.stats.nonTcpUdp++;
      return null;
    }
    if (packet.payloadTruncated > 0) {
      this.stats.fragmentsDropped++;
      return this.malformed('ip-fragment-truncated');
    }
    const key = `4:${packet.src4}:${packet.dst4}:${buf.readUInt16BE(start + 4)}:${protocol}`;
    const payload = this.fragments.add(
      key,
      packet.ts,
      fragmentOffset,
      more,
      buf,
      start + headerLength,
      ipEnd,
    );
    if (payload === null) return null;
    return this.decodeTransport(protocol, payload, 0, payload.length);
  }

  private decodeIpv6(buf: Buffer, start: number, end: number): DecodedPacket | null {
    // RFC 8200: version:4 class:8 flow:20 | payload length u16 | next header | hop limit |
    // source 16 | destination 16
    if (end - start < 40) return this.malformed('ipv6-truncated-header');
    if (buf[start]! >>> 4 !== 6) return this.malformed('ipv6-wrong-version');
    const payloadLength = buf.readUInt16BE(start + 4);
    const ipEnd = this.ipEnd(start, 40 + payloadLength, end);

    const packet = this.packet;
    packet.ipVersion = 6;
    packet.src4 = 0;
    packet.dst4 = 0;
    if (this.lastSrc6.compare(buf, start + 8, start + 24) !== 0) {
      buf.copy(this.lastSrc6, 0, start + 8, start + 24);
      this.lastSrc6Text = formatIpv6(buf, start + 8);
    }
    if (this.lastDst6.compare(buf, start + 24, start + 40) !== 0) {
      buf.copy(this.lastDst6, 0, start + 24, start + 40);
      this.lastDst6Text = formatIpv6(buf, start + 24);
    }
    packet.src6 = this.lastSrc6Text;
    packet.dst6 = this.lastDst6Text;
    return this.decodeIpv6Chain(buf[start + 6]!, buf, start + 40, ipEnd, 0);
  }

  /** Walks the IPv6 extension headers (RFC 8200 section 4) up to TCP or UDP. */
  private decodeIpv6Chain(
    first: number,
    buf: Buffer,
    start: number,
    end: number,
    seen: number,
  ): DecodedPacket | null {
    let nextHeader = first;
    let at = start;
    for (let count = seen; ; count++) {
      if (count > MAX_IPV6_EXTENSION_HEADERS)
        return this.malformed('ipv6-too-many-extension-headers');
      switch (nextHeader) {
        case IPPROTO_HOPOPTS:
        case IPPROTO_ROUTING:
        case IPPROTO_DSTOPTS:
        case IPPROTO_MOBILITY:
        case IPPROTO_AH: {
          // next header | length (8-octet units after the first 8; AH: 4-octet units minus 2)
          if (end - at < 8) return this.malformed('ipv6-truncated-extension-header');
          const units = buf[at + 1]!;
          const length = nextHeader === IPPROTO_AH ? (units + 2) * 4 : (units + 1) * 8;
          if (length > end - at) return this.malformed('ipv6-truncated-extension-header');
          nextHeader = buf[at]!;
          at += length;
          break;
        }
        case IPPROTO_FRAGMENT:
          return this.decodeIpv6Fragment(buf, at, end, count);
        case IPPROTO_NONE:
          this.stats.nonTcpUdp++;
          return null;
        default:
          return this.decodeTransport(nextHeader, buf, at, end);
      }
    }
  }

  private decodeIpv6Fragment(
    buf: Buffer,
    at: number,
    end: number,
    count: number,
  ): DecodedPacket | null {
    // next header | reserved | offset:13 res:2 M:1 | identification u32
    if (end - at < 8) return this.malformed('ipv6-truncated-extension-header');
    const nextHeader = buf[at]!;
    const offsetFlags = buf.readUInt16BE(at + 2);
    const fragmentOffset = offsetFlags & 0xfff8;
    const more = (offsetFlags & 1) !== 0;
    if (fragmentOffset === 0 && !more) {
      // An atomic fragment (RFC 6946) is a whole packet.
      return this.decodeIpv6Chain(nextHeader, buf, at + 8, end, count + 1);
    }
    if (this.packet.payloadTruncated > 0) {
      this.stats.fragmentsDropped++;
      return this.malformed('ip-fragment-truncated');
    }
    const packet = this.packet;
    const key = `6:${packet.src6}:${packet.dst6}:${buf.readUInt32BE(at + 4)}:${nextHeader}`;
    const payload = this.fragments.add(key, packet.ts, fragmentOffset, more, buf, at + 8, end);
    if (payload === null) return null;
    return this.decodeIpv6Chain(nextHeader, payload, 0, payload.length, count + 1);
  }

  private decodeTransport(
    protocol: number,
    buf: Buffer,
    start: number,
    end: number,
  ): DecodedPacket | null {
    const packet = this.packet;
    packet.protocol = protocol;
    packet.data = buf;
    if (protocol === IPPROTO_TCP) {
      // RFC 9293: source port | destination port | seq u32 | ack u32 | offset:4 res:3 NS:1 |
      // flags | window | checksum | urgent | options
      if (end - start < 20) return this.malformed('tcp-truncated-header');
      const headerLength = (buf[start + 12]! >>> 4) * 4;
      if (headerLength < 20) return this.malformed('tcp-invalid-data-offset');
      if (headerLength > end - start) return this.malformed('tcp-truncated-header');
      packet.srcPort = buf.readUInt16BE(start);
      packet.dstPort = buf.readUInt16BE(start + 2);
      packet.seq = buf.readUInt32BE(start + 4);
      packet.ack = buf.readUInt32BE(start + 8);
      packet.tcpFlags = buf[start + 13]! | ((buf[start + 12]! & 1) << 8);
      packet.payloadOffset = start + headerLength;
      packet.payloadLength = end - packet.payloadOffset;
      this.stats.decoded++;
      return packet;
    }
    if (protocol === IPPROTO_UDP) {
      // RFC 768: source port | destination port | length u16 | checksum u16
      if (end - start < 8) return this.malformed('udp-truncated-header');
      const length = buf.readUInt16BE(start + 4);
      if (length < 8) return this.malformed('udp-invalid-length');
      let payloadEnd = start + length;
      if (payloadEnd > end) {
        if (packet.payloadTruncated === 0) return this.malformed('udp-length-exceeds-ip-payload');
        payloadEnd = end;
      }
      packet.srcPort = buf.readUInt16BE(start);
      packet.dstPort = buf.readUInt16BE(start + 2);
      packet.seq = 0;
      packet.ack = 0;
      packet.tcpFlags = 0;
      packet.payloadOffset = start + 8;
      packet.payloadLength = payloadEnd - packet.payloadOffset;
      this.stats.decoded++;
      return packet;
    }
    this.stats.nonTcpUdp++;
    return null;
  }
}

function isVlanTag(etherType: number): boolean {
  return (
    etherType === ETHERTYPE_VLAN || etherType === ETHERTYPE_QINQ || etherType === ETHERTYPE_QINQ_OLD
  );
}
