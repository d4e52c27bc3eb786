// SOCKS5 listener (RFC 1928) with no authentication or username/password (RFC 1929), CONNECT
// only. The handshake messages are small and bounded, so the bytes of an unfinished message are
// kept (at most MAX_HANDSHAKE_BYTES) until it is complete; bytes after the request are the
// first bytes of the tunnel.

import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, isIPv4, isIPv6, type Server, type Socket } from 'node:net';
import type { Listener, SocksUser } from '../config/load.js';
import { clientEndpoint, type ProxyContext } from './gateway.js';
import { Splice } from './splice.js';
import { openTunnel } from './tunnel.js';

type SocksListener = Extract<Listener, { type: 'socks5' }>;

/** Largest handshake message: a request with a 255-byte domain name is 262 bytes, auth 513. */
export const MAX_HANDSHAKE_BYTES = 1024;

const VERSION = 0x05;
const AUTH_VERSION = 0x01;
const METHOD_NONE = 0x00;
const METHOD_PASSWORD = 0x02;
const METHOD_UNACCEPTABLE = 0xff;
const COMMAND_CONNECT = 0x01;
const ATYP_IPV4 = 0x01;
const ATYP_DOMAIN = 0x03;
const ATYP_IPV6 = 0x04;

/** Reply codes, RFC 1928 section 6. */
export const SocksReply = {
  Succeeded: 0x00,
  GeneralFailure: 0x01,
  NotAllowed: 0x02,
  NetworkUnreachable: 0x03,
  HostUnreachable: 0x04,
  ConnectionRefused: 0x05,
  TtlExpired: 0x06,
  CommandNotSupported: 0x07,
  AddressTypeNotSupported: 0x08,
} as const;

export type SocksMessage<T> = { need: number } | { error: string } | { value: T; length: number };

/** Parses the greeting: VER, NMETHODS, METHODS. */
export function parseGreeting(buffer: Buffer): SocksMessage<number[]> {
  if (buffer.length < 2) return { need: 2 - buffer.length };
  if (buffer[0] !== VERSION) return { error: `SOCKS version ${buffer[0]} is not 5` };
  const count = buffer[1]!;
  if (count === 0) return { error: 'greeting lists no authentication methods' };
  if (buffer.length < 2 + count) return { need: 2 + count - buffer.length };
  return { value: [...buffer.subarray(2, 2 + count)], length: 2 + count };
}

/** Parses an RFC 1929 request: VER 1, ULEN, UNAME, PLEN, PASSWD. */
export function parseAuth(buffer: Buffer): SocksMessage<SocksUser> {
  if (buffer.length < 2) return { need: 2 - buffer.length };
  if (buffer[0] !== AUTH_VERSION) return { error: `authentication version ${buffer[0]} is not 1` };
  const userLength = buffer[1]!;
  if (buffer.length < 3 + userLength) return { need: 3 + userLength - buffer.length };
  const passwordLength = buffer[2 + userLength]!;
  const length = 3 + userLength + passwordLength;
  if (buffer.length < length) return { need: length - buffer.length };
  return {
    value: {
      username: buffer.toString('utf8', 2, 2 + userLength),
      password: buffer.toString('utf8', 3 + userLength, length),
    },
    length,
  };
}

export interface SocksRequest {
  command: number;
  host: string;
  port: number;
  /** Set when the address type is not one of IPv4, domain name, IPv6. */
  unsupportedAddressType?: number;
}

/** Parses a request: VER, CMD, RSV, ATYP, DST.ADDR, DST.PORT. */
export function parseRequest(buffer: Buffer): SocksMessage<SocksRequest> {
  if (buffer.length < 5) return { need: 5 - buffer.length };
  if (buffer[0] !== VERSION) return { error: `SOCKS version ${buffer[0]} is not 5` };
  const command = buffer[1]!;
  const addressType = buffer[3]!;
  let addressEnd: number;
  if (addressType === ATYP_IPV4) addressEnd = 4 + 4;
  else if (addressType === ATYP_IPV6) addressEnd = 4 + 16;
  else if (addressType === ATYP_DOMAIN) addressEnd = 5 + buffer[4]!;
  else
    return {
      value: { command, host: '', port: 0, unsupportedAddressType: addressType },
      length: buffer.length,
    };
  const length = addressEnd + 2;
  if (buffer.length < length) return { need: length - buffer.length };

  let host: string;
  if (addressType === ATYP_IPV4) host = [...buffer.subarray(4, 8)].join('.');
  else if (addressType === ATYP_IPV6) host = ipv6Text(buffer.subarray(4, 20));
  else host = buffer.toString('latin1', 5, addressEnd);
  return { value: { command, host, port: buffer.readUInt16BE(addressEnd) }, length };
}

function ipv6Text(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  // The URL parser gives the canonical compressed form.
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

/** Encodes a reply with the bound address of the upstream socket, or 0.0.0.0:0 on failure. */
export function replyMessage(code: number, address = '0.0.0.0', port = 0): Buffer {
  if (isIPv6(address)) {
    const reply = Buffer.alloc(22);
    reply.set([VERSION, code, 0, ATYP_IPV6]);
    const url = new URL(`http://[${address}]/`).hostname.slice(1, -1);
    expandIpv6(url).copy(reply, 4);
    reply.writeUInt16BE(port, 20);
    return reply;
  }
  const reply = Buffer.alloc(10);
  reply.set([VERSION, code, 0, ATYP_IPV4]);
  const octets = isIPv4(address) ? address.split('.').map(Number) : [0, 0, 0, 0];
  reply.set(octets, 4);
  reply.writeUInt16BE(port, 8);
  return reply;
}

function expandIpv6(text: string): Buffer {
  const [head = '', tail = ''] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === '' ? [] : tail.split(':');
  const zeros = new Array(8 - headGroups.length - tailGroups.length).fill('0');
  const groups = text.includes('::') ? [...headGroups, ...zeros, ...tailGroups] : headGroups;
  const bytes = Buffer.alloc(16);
  groups.forEach((group, index) => {
    bytes.writeUInt16BE(Number.parseInt(group, 16), index * 2);
  });
  return bytes;
}

/**
 * Checks a username and password against every configured user. Each comparison takes the same
 * time wherever the values differ: both sides are SHA-256 digests, compared with
 * timingSafeEqual, and no user is skipped.
 */
export function isKnownUser(users: readonly SocksUser[], offered: SocksUser): boolean {
  const username = sha256(offered.username);
  const password = sha256(offered.password);
  let known = false;
  for (const user of users) {
    const sameUsername = timingSafeEqual(sha256(user.username), username);
    const samePassword = timingSafeEqual(sha256(user.password), password);
    known = (sameUsername && samePassword) || known;
  }
  return known;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

function replyFor(code: string): number {
  if (code === 'ECONNREFUSED') return SocksReply.ConnectionRefused;
  if (code === 'ENETUNREACH') return SocksReply.NetworkUnreachable;
  if (code === 'EHOSTUNREACH' || code === 'ETIMEDOUT') return SocksReply.HostUnreachable;
  return SocksReply.GeneralFailure;
}

export function startSocks5(context: ProxyContext, listener: SocksListener): Server {
  const server = createServer({ allowHalfOpen: true, noDelay: true });
  server.on('connection', (client: Socket) => {
    if (!context.admit(client, listener.name)) return;
    client.on('error', () => {});
    new SocksHandshake(context, listener, client);
  });
  return server;
}

/** Handshake stages; 'closed' follows a rejection, after which nothing more is read or logged. */
type Stage = 'greeting' | 'auth' | 'request' | 'connecting' | 'closed';

class SocksHandshake {
  private stage: Stage = 'greeting';
  private pending: Buffer = Buffer.alloc(0);
  private timer: NodeJS.Timeout;
  private readonly onData = (chunk: Buffer) => this.receive(chunk);
  /**
   * A client that half-closes before sending a complete request can never finish the handshake,
   * and with allowHalfOpen its socket would stay open (and count against the connection limits)
   * until the handshake timeout. Once the request is complete, a half-close is kept for the
   * tunnel instead.
   */
  private readonly onEnd = () => {
    // A client that sends its request, its data and a FIN at once (nc -N) still gets its tunnel:
    // the splice passes the FIN on after the data.
    if (this.stage === 'connecting') return;
    this.reject(`client closed during the ${this.stage} stage`);
  };

  constructor(
    private readonly context: ProxyContext,
    private readonly listener: SocksListener,
    private readonly client: Socket,
  ) {
    this.timer = setTimeout(() => {
      context.log.info(
        { listener: listener.name, client: clientEndpoint(client).ip, stage: this.stage },
        'SOCKS handshake timed out',
      );
      client.destroy();
    }, context.limits.handshakeTimeoutMs);
    this.timer.unref();
    client.on('data', this.onData);
    client.once('end', this.onEnd);
    client.once('close', () => clearTimeout(this.timer));
  }

  private receive(chunk: Buffer): void {
    if (this.stage === 'closed') return;
    if (this.pending.length + chunk.length > MAX_HANDSHAKE_BYTES && this.stage !== 'connecting') {
      this.reject(
        `handshake of ${this.pending.length + chunk.length} bytes exceeds the maximum ${MAX_HANDSHAKE_BYTES}`,
      );
      return;
    }
    this.pending =
      this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    if (this.stage === 'connecting') return;
    this.advance();
  }

  private advance(): void {
    while (this.pending.length > 0 && this.stage !== 'connecting') {
      if (this.stage === 'greeting') {
        const greeting = parseGreeting(this.pending);
        if ('need' in greeting) return;
        if ('error' in greeting) {
          this.reject(greeting.error);
          return;
        }
        this.consume(greeting.length);
        const method = this.listener.users.length > 0 ? METHOD_PASSWORD : METHOD_NONE;
        if (!greeting.value.includes(method)) {
          this.reject(
            'no acceptable authentication method',
            Buffer.from([VERSION, METHOD_UNACCEPTABLE]),
          );
          return;
        }
        this.client.write(Buffer.from([VERSION, method]));
        this.stage = method === METHOD_PASSWORD ? 'auth' : 'request';
      } else if (this.stage === 'auth') {
        const auth = parseAuth(this.pending);
        if ('need' in auth) return;
        if ('error' in auth) {
          this.reject(auth.error);
          return;
        }
        this.consume(auth.length);
        if (!isKnownUser(this.listener.users, auth.value)) {
          this.reject('authentication failed', Buffer.from([AUTH_VERSION, 0x01]));
          return;
        }
        this.client.write(Buffer.from([AUTH_VERSION, 0x00]));
        this.stage = 'request';
      } else {
        const request = parseRequest(this.pending);
        if ('need' in request) return;
        if ('error' in request) {
          this.reject(request.error);
          return;
        }
        this.consume(request.length);
        if (request.value.unsupportedAddressType !== undefined) {
          this.reject(
            `address type ${request.value.unsupportedAddressType} is not supported`,
            replyMessage(SocksReply.AddressTypeNotSupported),
          );
          return;
        }
        if (request.value.command !== COMMAND_CONNECT) {
          this.reject(
            `command ${request.value.command} is not supported, only CONNECT (1) is`,
            replyMessage(SocksReply.CommandNotSupported),
          );
          return;
        }
        this.stage = 'connecting';
        // From here connect_timeout applies, not the handshake timeout. The client stays paused
        // until the tunnel opens, so early data waits in the socket, not in `pending`.
        clearTimeout(this.timer);
        this.client.pause();
        this.connect(request.value).catch((error: unknown) => {
          this.context.log.error(
            { listener: this.listener.name, err: error },
            'SOCKS connect failed',
          );
          this.reject(null);
        });
      }
    }
  }

  private async connect(request: SocksRequest): Promise<void> {
    const initiator = clientEndpoint(this.client);
    const result = await openTunnel(
      this.context,
      initiator,
      request.host,
      request.port,
      'socks',
      'socks-0x02',
    );
    if (this.client.destroyed) {
      if (result.kind === 'open') result.upstream.destroy();
      return;
    }
    // openTunnel already logged the refusal or the failed connect.
    if (result.kind === 'refused') {
      this.reject(null, replyMessage(SocksReply.NotAllowed));
      return;
    }
    if (result.kind === 'failed') {
      this.reject(null, replyMessage(replyFor(result.code)));
      return;
    }

    clearTimeout(this.timer);
    this.client.off('data', this.onData);
    this.client.off('end', this.onEnd);
    const { upstream, flow } = result;
    this.client.write(
      replyMessage(SocksReply.Succeeded, upstream.localAddress, upstream.localPort),
    );
    const splice = new Splice({
      client: this.client,
      upstream,
      flow,
      services: this.context,
      idleTimeoutMs: this.context.limits.idleTimeoutMs,
      dicom: false,
      initialClientData: this.pending,
      onClose: () => this.context.untrack(splice),
    });
    this.context.track(splice);
  }

  private consume(length: number): void {
    this.pending = this.pending.subarray(length);
  }

  /**
   * Ends the handshake: logs `reason` unless the caller logged already, then sends `reply` and
   * closes once the client closes its side, or without a reply closes at once.
   */
  private reject(reason: string | null, reply?: Buffer): void {
    if (this.stage === 'closed') return;
    if (reason !== null) {
      this.context.log.info(
        {
          listener: this.listener.name,
          client: clientEndpoint(this.client).ip,
          stage: this.stage,
          reason,
        },
        'SOCKS client rejected',
      );
    }
    this.stage = 'closed';
    clearTimeout(this.timer);
    this.client.off('end', this.onEnd);
    if (reply === undefined) {
      this.client.destroy();
      return;
    }
    this.client.end(reply);
    // Reading on (and dropping what arrives) lets the client's FIN close the socket, also from
    // the paused 'connecting' stage. A client that keeps its side open is closed after the
    // handshake timeout.
    this.client.resume();
    this.timer = setTimeout(() => this.client.destroy(), this.context.limits.handshakeTimeoutMs);
    this.timer.unref();
  }
}
