// Text forms of IP addresses and host:port pairs, shared by the configuration checks, the
// inline destination checks and log lines.

import { isIP, isIPv6, SocketAddress } from 'node:net';
import { isLoopbackHost } from '../admin/loopback.js';

/**
 * Returns one spelling per address, so that string comparisons hold: IPv6 in its shortest form
 * (RFC 5952, as inet_ntop writes it), and an IPv4-mapped IPv6 address (::ffff:7f00:1,
 * 0:0:0:0:0:ffff:127.0.0.1) as the IPv4 address it reaches. Other text is returned as it is.
 */
export function canonicalAddress(address: string): string {
  if (isIP(address) !== 6) return address;
  const canonical = new SocketAddress({ address, family: 'ipv6' }).address;
  const mapped = canonical.startsWith('::ffff:') ? canonical.slice(7) : '';
  return isIP(mapped) === 4 ? mapped : canonical;
}

/**
 * Formats `host:port`, with an IPv6 address in brackets (RFC 3986 section 3.2.2), so the last
 * colon is always the port separator: `[::ffff:7f00:1]:1080`, `127.0.0.1:80`, `pacs.example:104`.
 */
export function formatHostPort(host: string, port: number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Returns true when a connection to `address` (canonical, see canonicalAddress) would reach a
 * socket bound to `ownHost` on the same port. That is an exact match, or a loopback or `local`
 * interface address when the socket is bound to a wildcard, a loopback address or a name.
 */
export function reachesOwnAddress(
  address: string,
  ownHost: string,
  local: ReadonlySet<string>,
): boolean {
  const own = isIP(ownHost) === 0 ? ownHost : canonicalAddress(ownHost);
  if (own === address) return true;
  const broad = own === '0.0.0.0' || own === '::' || isLoopbackHost(own) || isIP(own) === 0;
  return broad && (isLoopbackHost(address) || local.has(address));
}
