// Decoding of a complete TLS ClientHello handshake message (RFC 8446 section 4.1.2), with the
// server_name (RFC 6066 section 3), ALPN (RFC 7301 section 3.1) and supported_versions
// (RFC 8446 section 4.2.1) extensions. Pure: no I/O, no state between calls.

export const EXTENSION_SERVER_NAME = 0x0000;
export const EXTENSION_ALPN = 0x0010;
export const EXTENSION_SUPPORTED_VERSIONS = 0x002b;

const CONTENT_TYPE_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const NAME_TYPE_HOST_NAME = 0;
/** DNS names are at most 253 characters without the trailing dot (RFC 1035 section 2.3.4). */
const MAX_SERVER_NAME_CHARS = 253;
const HOST_NAME = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;

export interface ClientHelloInfo {
  ok: true;
  /** legacy_version, for example 0x0303 for TLS 1.2. */
  legacyVersion: number;
  /** The highest non-GREASE value of supported_versions, or legacyVersion without that extension. */
  version: number;
  sessionIdLength: number;
  cipherSuites: number[];
  compressionMethods: number[];
  /** Extension types in the order sent, GREASE values included. */
  extensionTypes: number[];
  /** The host_name of server_name, lowercased, without a trailing dot. */
  serverName?: string;
  /** ALPN protocol names in the client's order, decoded as Latin-1. */
  alpn: string[];
  supportedVersions: number[];
}

export interface ParseError {
  ok: false;
  /** Stable anomaly name. */
  anomaly: 'tls.bad_client_hello' | 'tls.not_client_hello' | 'tls.incomplete_client_hello';
  /** The wire field whose length or value is wrong, named as in the RFC. */
  field: string;
  message: string;
}

/** Thrown inside this module only, and turned into a ParseError by parseClientHello. */
class FieldError extends Error {
  constructor(
    readonly anomaly: ParseError['anomaly'],
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** A bounded cursor over one structure: reads past `end` raise a FieldError naming the field. */
class Reader {
  constructor(
    private readonly bytes: Buffer,
    public offset: number,
    readonly end: number,
  ) {}

  get remaining(): number {
    return this.end - this.offset;
  }

  private need(length: number, field: string): void {
    if (length > this.remaining) {
      throw new FieldError(
        'tls.bad_client_hello',
        field,
        `${field} needs ${length} bytes but its enclosing structure has ${this.remaining} left`,
      );
    }
  }

  u8(field: string): number {
    this.need(1, field);
    const value = this.bytes.readUInt8(this.offset);
    this.offset += 1;
    return value;
  }

  u16(field: string): number {
    this.need(2, field);
    const value = this.bytes.readUInt16BE(this.offset);
    this.offset += 2;
    return value;
  }

  u24(field: string): number {
    this.need(3, field);
    const value = this.bytes.readUIntBE(this.offset, 3);
    this.offset += 3;
    return value;
  }

  skip(length: number, field: string): void {
    this.need(length, field);
    this.offset += length;
  }

  bytesOf(length: number, field: string): Buffer {
    this.need(length, field);
    const view = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return view;
  }

  /** A reader over the next `length` bytes, which this reader skips. */
  sub(length: number, field: string): Reader {
    this.need(length, field);
    const inner = new Reader(this.bytes, this.offset, this.offset + length);
    this.offset += length;
    return inner;
  }

  /** Requires the structure to be fully consumed. */
  done(field: string): void {
    if (this.remaining !== 0) {
      throw new FieldError(
        'tls.bad_client_hello',
        field,
        `${field} has ${this.remaining} bytes after its last element`,
      );
    }
  }
}

/**
 * Decodes a ClientHello. `input` is either the handshake message (starting with type 1) or one
 * or more TLS records (starting with content type 22) that carry it, as the first bytes of a
 * connection. Never throws: malformed or truncated input gives a ParseError.
 */
export function parseClientHello(input: Buffer): ClientHelloInfo | ParseError {
  try {
    const message = input[0] === CONTENT_TYPE_HANDSHAKE ? handshakeFromRecords(input) : input;
    return decodeHandshake(message);
  } catch (error) {
    if (error instanceof FieldError) {
      return { ok: false, anomaly: error.anomaly, field: error.field, message: error.message };
    }
    throw error;
  }
}

/** RFC 8446 section 5.1: joins the fragments of the first handshake message from its records. */
function handshakeFromRecords(input: Buffer): Buffer {
  const fragments: Buffer[] = [];
  let collected = 0;
  let needed = Number.POSITIVE_INFINITY;
  const records = new Reader(input, 0, input.length);
  while (collected < needed) {
    if (records.remaining === 0) {
      throw new FieldError(
        'tls.incomplete_client_hello',
        'TLSPlaintext',
        `records end after ${collected} of ${Number.isFinite(needed) ? needed : 'at least 4'} handshake bytes`,
      );
    }
    const contentType = records.u8('TLSPlaintext.type');
    if (contentType !== CONTENT_TYPE_HANDSHAKE) {
      throw new FieldError(
        'tls.not_client_hello',
        'TLSPlaintext.type',
        `content type ${contentType} is not handshake (22)`,
      );
    }
    records.u16('TLSPlaintext.legacy_record_version');
    const length = records.u16('TLSPlaintext.length');
    const fragment = records.bytesOf(Math.min(length, records.remaining), 'TLSPlaintext.fragment');
    fragments.push(fragment);
    collected += fragment.length;
    if (fragment.length < length) continue;
    if (!Number.isFinite(needed) && collected >= 4) {
      const header = Buffer.concat(fragments);
      needed = 4 + header.readUIntBE(1, 3);
    }
  }
  return Buffer.concat(fragments).subarray(0, needed);
}

/** RFC 8446 section 4: Handshake { msg_type, uint24 length, ClientHello body }. */
function decodeHandshake(message: Buffer): ClientHelloInfo {
  const outer = new Reader(message, 0, message.length);
  const msgType = outer.u8('Handshake.msg_type');
  if (msgType !== HANDSHAKE_CLIENT_HELLO) {
    throw new FieldError(
      'tls.not_client_hello',
      'Handshake.msg_type',
      `handshake type ${msgType} is not client_hello (1)`,
    );
  }
  const length = outer.u24('Handshake.length');
  if (length > outer.remaining) {
    throw new FieldError(
      'tls.incomplete_client_hello',
      'Handshake.length',
      `Handshake.length ${length} exceeds the ${outer.remaining} bytes available`,
    );
  }
  return decodeClientHello(outer.sub(length, 'Handshake.length'));
}

function decodeClientHello(body: Reader): ClientHelloInfo {
  const legacyVersion = body.u16('legacy_version');
  body.skip(32, 'random');
  const sessionIdLength = body.u8('legacy_session_id.length');
  if (sessionIdLength > 32) {
    throw new FieldError(
      'tls.bad_client_hello',
      'legacy_session_id',
      `legacy_session_id length ${sessionIdLength} exceeds the maximum 32`,
    );
  }
  body.skip(sessionIdLength, 'legacy_session_id');

  const suitesLength = body.u16('cipher_suites.length');
  if (suitesLength < 2 || suitesLength % 2 !== 0) {
    throw new FieldError(
      'tls.bad_client_hello',
      'cipher_suites',
      `cipher_suites length ${suitesLength} is not a positive even number`,
    );
  }
  const suites = body.sub(suitesLength, 'cipher_suites');
  const cipherSuites: number[] = [];
  while (suites.remaining > 0) cipherSuites.push(suites.u16('CipherSuite'));

  const compressionLength = body.u8('legacy_compression_methods.length');
  if (compressionLength < 1) {
    throw new FieldError(
      'tls.bad_client_hello',
      'legacy_compression_methods',
      'legacy_compression_methods is empty',
    );
  }
  const compression = body.sub(compressionLength, 'legacy_compression_methods');
  const compressionMethods: number[] = [];
  while (compression.remaining > 0) compressionMethods.push(compression.u8('compression method'));

  const info: ClientHelloInfo = {
    ok: true,
    legacyVersion,
    version: legacyVersion,
    sessionIdLength,
    cipherSuites,
    compressionMethods,
    extensionTypes: [],
    alpn: [],
    supportedVersions: [],
  };
  // Hellos before TLS 1.2 may end here without an extensions block.
  if (body.remaining === 0) return info;

  const extensions = body.sub(body.u16('extensions.length'), 'extensions');
  body.done('ClientHello');
  while (extensions.remaining > 0) {
    const type = extensions.u16('Extension.extension_type');
    const data = extensions.sub(
      extensions.u16('Extension.extension_data.length'),
      'extension_data',
    );
    if (info.extensionTypes.includes(type)) {
      throw new FieldError(
        'tls.bad_client_hello',
        'Extension.extension_type',
        `extension type ${type} appears twice`,
      );
    }
    info.extensionTypes.push(type);
    if (type === EXTENSION_SERVER_NAME) info.serverName = decodeServerName(data);
    if (type === EXTENSION_ALPN) info.alpn = decodeAlpn(data);
    if (type === EXTENSION_SUPPORTED_VERSIONS)
      info.supportedVersions = decodeSupportedVersions(data);
  }
  const offered = info.supportedVersions.filter((version) => !isGrease(version));
  if (offered.length > 0) info.version = Math.max(...offered);
  return info;
}

/** RFC 6066 section 3: ServerNameList with one entry per name type; returns the host_name. */
function decodeServerName(data: Reader): string | undefined {
  // An empty extension_data is how a server acknowledges SNI; a client sends a list.
  if (data.remaining === 0) return undefined;
  const list = data.sub(data.u16('server_name_list.length'), 'server_name_list');
  data.done('server_name extension');
  let hostName: string | undefined;
  while (list.remaining > 0) {
    const nameType = list.u8('ServerName.name_type');
    const name = list.bytesOf(list.u16('HostName.length'), 'HostName');
    if (nameType !== NAME_TYPE_HOST_NAME || hostName !== undefined) continue;
    let text = name.toString('latin1').toLowerCase();
    if (text.endsWith('.')) text = text.slice(0, -1);
    if (text.length === 0 || text.length > MAX_SERVER_NAME_CHARS || !HOST_NAME.test(text)) {
      throw new FieldError(
        'tls.bad_client_hello',
        'HostName',
        `HostName of ${name.length} bytes is not a DNS name of at most ${MAX_SERVER_NAME_CHARS} characters`,
      );
    }
    hostName = text;
  }
  return hostName;
}

/** RFC 7301 section 3.1: ProtocolNameList of non-empty opaque names. */
function decodeAlpn(data: Reader): string[] {
  const list = data.sub(data.u16('protocol_name_list.length'), 'protocol_name_list');
  data.done('application_layer_protocol_negotiation extension');
  const names: string[] = [];
  while (list.remaining > 0) {
    const length = list.u8('ProtocolName.length');
    if (length === 0) {
      throw new FieldError('tls.bad_client_hello', 'ProtocolName', 'ProtocolName is empty');
    }
    names.push(list.bytesOf(length, 'ProtocolName').toString('latin1'));
  }
  return names;
}

/** RFC 8446 section 4.2.1: ProtocolVersion versions<2..254> in a ClientHello. */
function decodeSupportedVersions(data: Reader): number[] {
  const length = data.u8('supported_versions.length');
  if (length < 2 || length % 2 !== 0) {
    throw new FieldError(
      'tls.bad_client_hello',
      'supported_versions',
      `supported_versions length ${length} is not a positive even number`,
    );
  }
  const list = data.sub(length, 'supported_versions');
  data.done('supported_versions extension');
  const versions: number[] = [];
  while (list.remaining > 0) versions.push(list.u16('ProtocolVersion'));
  return versions;
}

/** RFC 8701: GREASE values are 0x?a?a with both bytes equal. */
export function isGrease(value: number): boolean {
  return (value & 0x0f0f) === 0x0a0a && value >> 8 === (value & 0xff);
}
