// Community ID v1 flow hashes (https://github.com/corelight/community-id-spec), so a SIEM can
// join tollgate's events with Zeek, Suricata and Wireshark records of the same connection.
//
// Hash input, all integers in network byte order:
//   seed (2 bytes) | lower address | higher address | protocol (1) | 0 (1) | lower port (2) | higher port (2)
// where "lower" is the endpoint whose address (then port) sorts first, so both directions of a
// flow give the same hash. The output is "1:" followed by the base64 SHA-1 digest.

import { createHash } from 'node:crypto';
import { parseIpv4, parseIpv6 } from '../policy/cidr.js';

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/**
 * Returns the address as 4 or 16 network-order bytes. An IPv4-mapped IPv6 address gives 4,
 * because the inline proxy's dual-stack sockets report IPv4 peers that way while the wire (and so
 * every other sensor) carried IPv4.
 */
function addressBytes(ip: string): Buffer | null {
  const v4 = parseIpv4(ip);
  if (v4 >= 0) {
    const bytes = Buffer.alloc(4);
    bytes.writeUInt32BE(v4);
    return bytes;
  }
  const v6 = parseIpv6(ip);
  if (v6 === null) return null;
  if (v6 >> 32n === 0xffffn) {
    const bytes = Buffer.alloc(4);
    bytes.writeUInt32BE(Number(v6 & 0xffffffffn));
    return bytes;
  }
  const bytes = Buffer.alloc(16);
  bytes.writeBigUInt64BE(v6 >> 64n, 0);
  bytes.writeBigUInt64BE(v6 & 0xffffffffffffffffn, 8);
  return bytes;
}

/**
 * Computes the Community ID of a TCP or UDP flow. Returns null when an address is not IPv4 or
 * IPv6, or when the two addresses are of different families.
 */
export function communityId(
  protocol: number,
  sourceIp: string,
  sourcePort: number,
  destinationIp: string,
  destinationPort: number,
  seed = 0,
): string | null {
  const source = addressBytes(sourceIp);
  const destination = addressBytes(destinationIp);
  if (!source || !destination || source.length !== destination.length) return null;

  const order = Buffer.compare(source, destination);
  const sourceFirst = order < 0 || (order === 0 && sourcePort <= destinationPort);
  const [lowIp, highIp] = sourceFirst ? [source, destination] : [destination, source];
  const [lowPort, highPort] = sourceFirst
    ? [sourcePort, destinationPort]
    : [destinationPort, sourcePort];

  const header = Buffer.alloc(2);
  header.writeUInt16BE(seed & 0xffff);
  const trailer = Buffer.alloc(6);
  trailer.writeUInt8(protocol & 0xff, 0);
  trailer.writeUInt8(0, 1);
  trailer.writeUInt16BE(lowPort & 0xffff, 2);
  trailer.writeUInt16BE(highPort & 0xffff, 4);

  const digest = createHash('sha1').update(header).update(lowIp).update(highIp).update(trailer);
  return `1:${digest.digest('base64')}`;
}
