// Host names from HTTP authorities (RFC 9110 section 7.2 Host, RFC 9112 section 3.2.3
// authority-form of CONNECT targets).

/** DNS names are at most 253 characters without the trailing dot (RFC 1035 section 2.3.4). */
const MAX_HOST_CHARS = 253;
const REG_NAME = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;
const IPV6_LITERAL = /^[0-9a-f:.]+$/;

/**
 * Returns the lowercased host of `host[:port]` or `[ipv6]:port` without the port, or null when
 * the value is not a plausible host name or address.
 */
export function hostFromAuthority(authority: string): string | null {
  const value = authority.trim().toLowerCase();
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close === -1) return null;
    const address = value.slice(1, close);
    const rest = value.slice(close + 1);
    if (!IPV6_LITERAL.test(address) || !(rest === '' || /^:[0-9]*$/.test(rest))) return null;
    return address;
  }
  const colon = value.lastIndexOf(':');
  let name = value;
  if (colon !== -1) {
    if (!/^[0-9]*$/.test(value.slice(colon + 1))) return null;
    name = value.slice(0, colon);
  }
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.length === 0 || name.length > MAX_HOST_CHARS || !REG_NAME.test(name)) return null;
  return name;
}
