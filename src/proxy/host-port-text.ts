// Text form of a host and port for log lines and messages.

import { isIPv6 } from 'node:net';

/**
 * Formats `host:port`, with an IPv6 address in brackets (RFC 3986 section 3.2.2), so the last
 * colon is always the port separator: `[::ffff:7f00:1]:1080`, `127.0.0.1:80`, `pacs.example:104`.
 * A host that is already bracketed is left as it is.
 */
export function formatHostPort(host: string, port: number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}
