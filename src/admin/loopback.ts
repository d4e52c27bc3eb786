// The loopback check for the admin API address. The API can reload the policy and read the
// meters, so by default it must not be reachable from any other host.

import { isIP } from 'node:net';

/**
 * Returns true for 127.0.0.0/8, ::1, IPv4-mapped 127.0.0.0/8 (::ffff:127.x.y.z) and the name
 * `localhost`. Any other name is false, because what it resolves to can change after the check.
 */
export function isLoopbackHost(host: string): boolean {
  const lower = host.toLowerCase();
  if (lower === 'localhost') return true;
  const version = isIP(lower);
  if (version === 4) return lower.startsWith('127.');
  if (version !== 6) return false;
  if (lower.startsWith('::ffff:') && isIP(lower.slice(7)) === 4) {
    return lower.slice(7).startsWith('127.');
  }
  return expandIpv6(lower) === '0000:0000:0000:0000:0000:0000:0000:0001';
}

/** Writes an IPv6 address (no embedded IPv4 part) as eight four-digit groups. */
function expandIpv6(address: string): string {
  const [head = '', tail] = address.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = new Array<string>(8 - headGroups.length - tailGroups.length).fill('0');
  const groups = tail === undefined ? headGroups : [...headGroups, ...zeros, ...tailGroups];
  return groups.map((group) => group.padStart(4, '0')).join(':');
}
