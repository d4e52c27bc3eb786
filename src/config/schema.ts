// The structure of the gateway configuration file (tollgate run --config), as zod schemas.
// Values are checked one by one here; load.ts turns issues into file:line errors.

import { isIP } from 'node:net';
import { z } from 'zod';
import { isLoopbackHost } from '../admin/loopback.js';
import { hostEntryProblem } from '../policy/hosts.js';
import { cidr, parsed, quote } from '../policy/schema.js';

/** A host and port to listen on or connect to. `host` is an address or a DNS name. */
export interface HostPort {
  host: string;
  port: number;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a duration ("10s", "500ms", "5m", or a number of seconds) into milliseconds. */
export function parseDuration(value: unknown): number | string {
  const expected = `expected a duration like "10s", "500ms" or "5m", got ${quote(value)}`;
  if (typeof value === 'number') {
    return Number.isFinite(value) && value > 0 ? Math.round(value * 1000) : expected;
  }
  if (typeof value !== 'string') return expected;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value);
  if (!match) return expected;
  const millis = Math.round(Number(match[1]) * DURATION_UNITS[match[2] ?? 's']!);
  return millis > 0 ? millis : `duration ${quote(value)} must be longer than 0`;
}

/**
 * Parses "host:port", "[ipv6]:port" or "ipv6-address" forms into a HostPort; returns a reason
 * string on error. A bare IPv6 address without brackets is rejected, since its last group would
 * read as a port.
 */
export function parseHostPort(value: unknown): HostPort | string {
  const expected = `expected "host:port" or "[ipv6]:port", got ${quote(value)}`;
  if (typeof value !== 'string') return expected;
  const bracketed = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(value);
  const plain = /^([^:[\]\s]+):(\d{1,5})$/.exec(value);
  const match = bracketed ?? plain;
  if (!match) return expected;
  // An address written as an absolute name ("127.0.0.1.") is that address.
  const written = match[1]!;
  const host =
    !bracketed && written.endsWith('.') && isIP(written.slice(0, -1)) === 4
      ? written.slice(0, -1)
      : written;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return `port ${port} in ${quote(value)} is outside 1-65535`;
  if (bracketed && isIP(host) !== 6) return `invalid IPv6 address ${quote(host)}`;
  if (!bracketed && isIP(host) === 0) {
    const problem = hostEntryProblem(host);
    if (problem !== null) return `invalid host ${quote(host)}: ${problem}`;
  }
  return { host, port };
}

const listenerName = z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, {
  error: (issue) =>
    `invalid listener name ${quote(issue.input)}; use a-z, 0-9, "-" and "_", starting with a letter or digit`,
});
const hostPort = parsed(parseHostPort);
const duration = parsed(parseDuration);
const count = z
  .number()
  .int()
  .min(1, { error: (issue) => `expected at least 1, got ${quote(issue.input)}` });
/** A file path; relative paths are taken from the configuration file's folder. */
const filePath = z.string().min(1, 'must not be empty');

/** RFC 1929 allows 1-255 bytes for each of user name and password. */
const socksCredential = z
  .string()
  .min(1, 'must not be empty')
  .refine((value) => Buffer.byteLength(value) <= 255, 'must be at most 255 bytes (RFC 1929)');

const relaySchema = z.strictObject({
  name: listenerName,
  type: z.literal('relay'),
  listen: hostPort,
  upstream: hostPort,
  protocol: z.enum(['dicom', 'http', 'tls', 'smb']).optional(),
});

const httpProxySchema = z.strictObject({
  name: listenerName,
  type: z.literal('http-proxy'),
  listen: hostPort,
});

/** A SOCKS5 user with the password in the config or in a file named by `password_file`. */
const socksUserSchema = z
  .strictObject({
    username: socksCredential,
    password: socksCredential.optional(),
    password_file: z.string().min(1, 'must not be empty').optional(),
  })
  .superRefine((user, ctx) => {
    if (user.password !== undefined && user.password_file !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['password_file'],
        input: user.password_file,
        message: 'set either password or password_file, not both',
      });
    } else if (user.password === undefined && user.password_file === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['password'],
        input: null,
        message: 'missing password; set password or password_file',
      });
    }
  });

const socksSchema = z.strictObject({
  name: listenerName,
  type: z.literal('socks5'),
  listen: hostPort,
  users: z.array(socksUserSchema).optional(),
});

export const listenerSchema = z.discriminatedUnion('type', [
  relaySchema,
  httpProxySchema,
  socksSchema,
]);
export type ListenerConfig = z.infer<typeof listenerSchema>;

export const limitsSchema = z.strictObject({
  max_connections: count.optional(),
  max_connections_per_source: count.optional(),
  connect_timeout: duration.optional(),
  idle_timeout: duration.optional(),
  header_timeout: duration.optional(),
  handshake_timeout: duration.optional(),
  drain_timeout: duration.optional(),
});

/** The admin API; a listen address outside loopback needs allow_non_loopback: true. */
export const adminSchema = z
  .strictObject({
    listen: hostPort,
    token_file: filePath.optional(),
    allow_non_loopback: z.boolean().optional(),
  })
  .superRefine((admin, ctx) => {
    if (admin.allow_non_loopback === true || isLoopbackHost(admin.listen.host)) return;
    ctx.addIssue({
      code: 'custom',
      path: ['listen'],
      message: `admin address ${quote(admin.listen.host)} is not a loopback address (127.0.0.0/8, ::1, localhost); the admin API can reload the policy and read the meters, so bind it to loopback or set admin.allow_non_loopback: true`,
    });
  });

export const configSchema = z.strictObject({
  version: z.literal(1, {
    error: (issue) =>
      `unsupported config version ${quote(issue.input)}; this tollgate reads version 1`,
  }),
  policy: filePath.optional(),
  protected_networks: z.array(cidr).optional(),
  source_networks: z.array(cidr).optional(),
  denied_destinations: z.array(cidr).optional(),
  events: filePath.optional(),
  include_phi: z.boolean().optional(),
  pseudonym_key_file: filePath.optional(),
  listeners: z.array(z.unknown()).min(1, 'configure at least one listener'),
  admin: adminSchema.optional(),
  limits: limitsSchema.optional(),
});
