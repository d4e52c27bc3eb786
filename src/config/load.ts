// Loading the gateway configuration: YAML with positions, schema validation, defaults.
// Every problem becomes an error naming the file, line, column and key path, formatted like
// policy errors, and all of a file's problems are reported together.

import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { z } from 'zod';
import { formatHostPort } from '../net/address.js';
import { quote } from '../policy/schema.js';
import {
  formatPolicyError,
  type PolicyError,
  readTextFile,
  YamlSource,
} from '../policy/yaml-source.js';
import { type PseudonymKeyFile, readPseudonymKeyFile } from './key-file.js';
import { configSchema, type HostPort, type ListenerConfig, listenerSchema } from './schema.js';
import { type OwnAddress, unreachableUpstreamProblem } from './upstream-check.js';

/** Largest configuration file read, in bytes. */
export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

/** Largest SOCKS5 password file read, in bytes: a 255-byte password and a line end fit. */
export const MAX_PASSWORD_FILE_BYTES = 1024;

/** Longest SOCKS5 password, in bytes (RFC 1929 PLEN is one byte). */
const MAX_SOCKS_PASSWORD_BYTES = 255;

/** Link-local addresses, where clouds serve instance metadata and credentials; always denied. */
export const BUILT_IN_DENIED_DESTINATIONS = ['169.254.0.0/16', 'fe80::/10', 'fd00:ec2::254/128'];

export interface GatewayLimits {
  /** Client connections served at once over all listeners. */
  maxConnections: number;
  /** Client connections served at once from one source address. */
  maxConnectionsPerSource: number;
  /** Time allowed to establish the upstream TCP connection. */
  connectTimeoutMs: number;
  /** A relayed connection with no bytes in either direction for this long is closed. */
  idleTimeoutMs: number;
  /** Time a proxy client has to send a complete HTTP request head. */
  headerTimeoutMs: number;
  /** Time a SOCKS5 client has to finish its greeting, authentication and request. */
  handshakeTimeoutMs: number;
  /** After SIGTERM, how long open connections may go on before they are closed. */
  drainTimeoutMs: number;
}

export const DEFAULT_GATEWAY_LIMITS: GatewayLimits = {
  maxConnections: 4096,
  maxConnectionsPerSource: 256,
  connectTimeoutMs: 10_000,
  idleTimeoutMs: 15 * 60_000,
  headerTimeoutMs: 30_000,
  handshakeTimeoutMs: 10_000,
  drainTimeoutMs: 30_000,
};

export type Listener =
  | { name: string; type: 'relay'; listen: HostPort; upstream: HostPort; protocol?: RelayProtocol }
  | { name: string; type: 'http-proxy'; listen: HostPort }
  | { name: string; type: 'socks5'; listen: HostPort; users: SocksUser[] };

export type RelayProtocol = 'dicom' | 'http' | 'tls' | 'smb';

export interface SocksUser {
  username: string;
  /** The password from the config or read from its password_file. Never logged. */
  password: string;
}

export interface GatewayConfig {
  /** The file the configuration was read from. */
  source: string;
  /** Absolute path of the policy file, or null for the embedded default policy. */
  policyPath: string | null;
  /** CIDRs that replace the policy's protected networks, or null to use the policy's. */
  protectedNetworks: string[] | null;
  /** CIDRs of clients allowed to use the gateway, or null for the protected networks. */
  sourceNetworks: string[] | null;
  /** CIDRs no connection may go to: the built-in link-local ranges plus the configured ones. */
  deniedDestinations: string[];
  /** Events file (JSON lines, appended), or '-' for standard output. */
  events: string;
  includePhi: boolean;
  /** The key read from pseudonym_key_file, or null to read TOLLGATE_PSEUDONYM_KEY. */
  pseudonymKey: PseudonymKeyFile | null;
  listeners: Listener[];
  /** Address of the admin API, or null when it is off; the proxies refuse connections to it. */
  admin: HostPort | null;
  /** Absolute path of the admin token file, or null to read TOLLGATE_ADMIN_TOKEN. */
  adminTokenFile: string | null;
  /** True when the config allows an admin address outside loopback. */
  adminAllowNonLoopback: boolean;
  limits: GatewayLimits;
}

export class ConfigValidationError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(readonly errors: PolicyError[]) {
    super(errors.map(formatPolicyError).join('\n'));
    this.name = 'ConfigValidationError';
  }
}

export class ConfigReadError extends Error {
  readonly code = 'CONFIG_UNREADABLE';
  constructor(
    readonly file: string,
    options: { cause: unknown },
  ) {
    const reason = options.cause instanceof Error ? options.cause.message : String(options.cause);
    super(`cannot read config file ${file}: ${reason}`, options);
    this.name = 'ConfigReadError';
  }
}

/** Reads the configuration at `path`; throws ConfigReadError or ConfigValidationError. */
export function loadConfigFile(path: string): GatewayConfig {
  let text: string;
  try {
    text = readTextFile(path, MAX_CONFIG_FILE_BYTES);
  } catch (cause) {
    throw new ConfigReadError(path, { cause });
  }
  return loadConfigText(text, path, dirname(resolve(path)));
}

/**
 * Parses and checks a configuration. `fileName` names the text in errors. A relative policy,
 * events, admin token, pseudonym key or SOCKS5 password file path is taken relative to
 * `baseDir`. Throws ConfigValidationError with every problem.
 */
export function loadConfigText(text: string, fileName: string, baseDir: string): GatewayConfig {
  const errors: PolicyError[] = [];
  const source = new YamlSource(fileName, text, errors, wordConfigIssue);
  if (!source.ok) throw new ConfigValidationError(errors);
  // toJS records an error only when the conversion fails, as on too many aliases.
  const raw = source.toJS();
  if (errors.length > 0) throw new ConfigValidationError(errors);

  if (raw === null || raw === undefined) {
    source.report([], 'the config is empty; expected a mapping with "version: 1" and "listeners"');
    throw new ConfigValidationError(errors);
  }
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    source.report([], `expected a mapping with "version: 1" and "listeners", got ${quote(raw)}`);
    throw new ConfigValidationError(errors);
  }
  const top = configSchema.safeParse(raw, { reportInput: true });
  if (!top.success) source.reportIssues(top.error);

  // Listeners are checked one by one, so that one broken listener does not hide the others.
  const fields = raw as Record<string, unknown>;
  const listeners: Listener[] = [];
  const relays: Array<{ index: number; relay: Listener & { type: 'relay' } }> = [];
  const names = new Map<string, number>();
  const addresses = new Map<string, number>();
  (Array.isArray(fields.listeners) ? fields.listeners : []).forEach((value, index) => {
    const parsed = listenerSchema.safeParse(value, { reportInput: true });
    if (!parsed.success) {
      source.reportIssues(parsed.error, ['listeners', index]);
      return;
    }
    const users: SocksUser[] = [];
    if (parsed.data.type === 'socks5') {
      (parsed.data.users ?? []).forEach((user, userIndex) => {
        if (user.password !== undefined) {
          users.push({ username: user.username, password: user.password });
          return;
        }
        const file = resolve(baseDir, user.password_file ?? '');
        const password = readPasswordFile(file);
        if (typeof password === 'string') {
          users.push({ username: user.username, password });
        } else {
          source.report(
            ['listeners', index, 'users', userIndex, 'password_file'],
            password.problem,
          );
        }
      });
    }
    const listener = toListener(parsed.data, users);
    const previousName = names.get(listener.name);
    if (previousName !== undefined) {
      source.report(
        ['listeners', index, 'name'],
        `listener name ${quote(listener.name)} is already used by listeners[${previousName}]`,
      );
    }
    names.set(listener.name, index);
    const address = `${listener.listen.host}|${listener.listen.port}`;
    const previousAddress = addresses.get(address);
    if (previousAddress !== undefined) {
      source.report(
        ['listeners', index, 'listen'],
        `address ${listener.listen.host}:${listener.listen.port} is already used by listeners[${previousAddress}]`,
      );
    }
    addresses.set(address, index);
    listeners.push(listener);
    if (listener.type === 'relay') relays.push({ index, relay: listener });
  });

  if (!top.success) throw new ConfigValidationError(errors);
  const data = top.data;

  const own: OwnAddress[] = listeners.map((listener) => ({
    address: listener.listen,
    owner: `listener ${quote(listener.name)}`,
  }));
  if (data.admin !== undefined) own.push({ address: data.admin.listen, owner: 'the admin API' });
  for (const { index, relay } of relays) {
    const problem = unreachableUpstreamProblem(relay.upstream, {
      builtInDenied: BUILT_IN_DENIED_DESTINATIONS,
      configuredDenied: data.denied_destinations ?? [],
      own,
    });
    if (problem !== null) {
      source.report(
        ['listeners', index, 'upstream'],
        `relay ${quote(relay.name)} upstream ${formatHostPort(relay.upstream.host, relay.upstream.port)} ${problem}, so the gateway would refuse every connection through this relay`,
      );
    }
  }

  let pseudonymKey: PseudonymKeyFile | null = null;
  if (data.pseudonym_key_file !== undefined) {
    const key = readPseudonymKeyFile(resolve(baseDir, data.pseudonym_key_file));
    if ('problem' in key) source.report(['pseudonym_key_file'], key.problem);
    else pseudonymKey = key;
  }

  if (errors.length > 0) throw new ConfigValidationError(errors);
  const limits = data.limits ?? {};

  return {
    source: fileName,
    policyPath: data.policy === undefined ? null : resolve(baseDir, data.policy),
    protectedNetworks: data.protected_networks ?? null,
    sourceNetworks: data.source_networks ?? null,
    deniedDestinations: [...BUILT_IN_DENIED_DESTINATIONS, ...(data.denied_destinations ?? [])],
    events: data.events === undefined || data.events === '-' ? '-' : resolve(baseDir, data.events),
    includePhi: data.include_phi ?? false,
    pseudonymKey,
    listeners,
    admin: data.admin?.listen ?? null,
    adminTokenFile:
      data.admin?.token_file === undefined ? null : resolve(baseDir, data.admin.token_file),
    adminAllowNonLoopback: data.admin?.allow_non_loopback ?? false,
    limits: {
      maxConnections: limits.max_connections ?? DEFAULT_GATEWAY_LIMITS.maxConnections,
      maxConnectionsPerSource:
        limits.max_connections_per_source ?? DEFAULT_GATEWAY_LIMITS.maxConnectionsPerSource,
      connectTimeoutMs: limits.connect_timeout ?? DEFAULT_GATEWAY_LIMITS.connectTimeoutMs,
      idleTimeoutMs: limits.idle_timeout ?? DEFAULT_GATEWAY_LIMITS.idleTimeoutMs,
      headerTimeoutMs: limits.header_timeout ?? DEFAULT_GATEWAY_LIMITS.headerTimeoutMs,
      handshakeTimeoutMs: limits.handshake_timeout ?? DEFAULT_GATEWAY_LIMITS.handshakeTimeoutMs,
      drainTimeoutMs: limits.drain_timeout ?? DEFAULT_GATEWAY_LIMITS.drainTimeoutMs,
    },
  };
}

/**
 * Reads a SOCKS5 password file: one line, one trailing line end ignored. Returns the password,
 * or a problem that names the file but never its content.
 */
export function readPasswordFile(file: string): string | { problem: string } {
  let bytes: Buffer;
  try {
    const stats = statSync(file);
    if (!stats.isFile()) return { problem: `password file ${file} is not a regular file` };
    const size = stats.size;
    if (size > MAX_PASSWORD_FILE_BYTES) {
      return {
        problem: `password file ${file} is ${size} bytes, more than the maximum ${MAX_PASSWORD_FILE_BYTES}`,
      };
    }
    bytes = readFileSync(file);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    return { problem: `cannot read password file ${file}: ${reason}` };
  }
  const password = bytes.toString('utf8').replace(/\r?\n$/, '');
  if (password === '') return { problem: `password file ${file} is empty` };
  if (/[\r\n]/.test(password)) {
    return { problem: `password file ${file} has more than one line; write the password alone` };
  }
  const length = Buffer.byteLength(password);
  if (length > MAX_SOCKS_PASSWORD_BYTES) {
    return {
      problem: `password in ${file} is ${length} bytes, more than the maximum ${MAX_SOCKS_PASSWORD_BYTES} (RFC 1929)`,
    };
  }
  return password;
}

function toListener(input: ListenerConfig, users: SocksUser[]): Listener {
  switch (input.type) {
    case 'relay': {
      const relay: Listener = {
        name: input.name,
        type: 'relay',
        listen: input.listen,
        upstream: input.upstream,
      };
      if (input.protocol !== undefined) relay.protocol = input.protocol;
      return relay;
    }
    case 'http-proxy':
      return { name: input.name, type: 'http-proxy', listen: input.listen };
    case 'socks5':
      return { name: input.name, type: 'socks5', listen: input.listen, users };
  }
}

/** Words the configuration's issues that the shared wording in describeIssue would get wrong. */
function wordConfigIssue(issue: z.core.$ZodIssue): string | undefined {
  if (issue.code === 'invalid_type' && issue.expected === 'int') {
    return `expected a whole number, got ${quote(issue.input)}`;
  }
  // A password of the wrong type is still a password: the message leaves its value out.
  if (issue.path.at(-1) === 'password' && issue.code === 'invalid_type') {
    return `expected ${issue.expected}`;
  }
  if (
    issue.code === 'invalid_union' &&
    'note' in issue &&
    issue.note === 'No matching discriminator'
  ) {
    return 'invalid listener type; expected one of "relay", "http-proxy", "socks5"';
  }
  if (issue.code === 'invalid_value') {
    const options = issue.values.map((value) => quote(value)).join(', ');
    return issue.values.length === 1 && issue.message
      ? issue.message
      : `invalid value ${quote(issue.input)}; expected one of ${options}`;
  }
  return undefined;
}
