// Per-flow TLS analysis: reassembles the client's first handshake message across TLS records
// and TCP segments, reports the ClientHello, then counts only, because the rest is encrypted
// or of no use to a monitor.

import type { Analyzer, AnalyzerSink, FlowView, Millis, Side } from '../../engine/types.js';
import { parseClientHello } from './client-hello.js';

export interface TlsLimits {
  /** Maximum ClientHello handshake message length, header excluded. */
  maxClientHelloBytes: number;
}

export const DEFAULT_TLS_LIMITS: Readonly<TlsLimits> = { maxClientHelloBytes: 64 * 1024 };

/** RFC 8446 section 5.1: a TLSPlaintext fragment is at most 2^14 bytes. */
const MAX_PLAINTEXT_FRAGMENT = 16384;
const RECORD_HEADER_BYTES = 5;
const HANDSHAKE_HEADER_BYTES = 4;
const CONTENT_TYPE_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;

export type TlsAnomaly =
  | 'tls.bad_client_hello'
  | 'tls.not_client_hello'
  | 'tls.incomplete_client_hello'
  | 'tls.client_hello_too_large'
  | 'tls.bad_record'
  | 'tls.sslv2_client_hello'
  | 'tls.gap';

type State = 'record-header' | 'record-body' | 'count-only';

export class TlsAnalyzer implements Analyzer {
  readonly protocol = 'tls' as const;
  private state: State = 'record-header';
  /** The current record header, copied because it may straddle chunks. */
  private readonly recordHeader = Buffer.alloc(RECORD_HEADER_BYTES);
  private recordHeaderFilled = 0;
  private recordRemaining = 0;
  private readonly handshakeHeader = Buffer.alloc(HANDSHAKE_HEADER_BYTES);
  private handshakeHeaderFilled = 0;
  /** The whole handshake message, allocated once its checked length is known. */
  private message: Buffer | null = null;
  private messageFilled = 0;
  private firstRecord = true;

  constructor(
    _flow: FlowView,
    private readonly sink: AnalyzerSink,
    private readonly limits: TlsLimits = DEFAULT_TLS_LIMITS,
  ) {}

  data(side: Side, chunk: Buffer, ts: Millis): void {
    if (side !== 0) return;
    let offset = 0;
    while (offset < chunk.length && this.state !== 'count-only') {
      if (this.state === 'record-header') {
        const take = Math.min(RECORD_HEADER_BYTES - this.recordHeaderFilled, chunk.length - offset);
        chunk.copy(this.recordHeader, this.recordHeaderFilled, offset, offset + take);
        this.recordHeaderFilled += take;
        offset += take;
        if (this.recordHeaderFilled === RECORD_HEADER_BYTES) this.startRecord(ts);
      } else {
        const take = Math.min(this.recordRemaining, chunk.length - offset);
        this.handshakeBytes(chunk.subarray(offset, offset + take), ts);
        this.recordRemaining -= take;
        offset += take;
        if (this.recordRemaining === 0 && this.state === 'record-body') {
          this.state = 'record-header';
          this.recordHeaderFilled = 0;
        }
      }
    }
  }

  gap(side: Side, length: number, ts: Millis): void {
    if (side !== 0 || this.state === 'count-only') return;
    this.fail('tls.gap', ts, { bytes: length });
  }

  end(ts: Millis): void {
    if (this.state === 'count-only') return;
    // Both counts include the 4-byte handshake header; expected is 0 until that header is known.
    this.fail('tls.incomplete_client_hello', ts, {
      received: this.message === null ? this.handshakeHeaderFilled : this.messageFilled,
      expected: this.message === null ? 0 : this.message.length,
    });
  }

  /** RFC 8446 section 5.1: TLSPlaintext { type, legacy_record_version, length, fragment }. */
  private startRecord(ts: Millis): void {
    const header = this.recordHeader;
    // SSL 2.0 CLIENT-HELLO (RFC 6101 appendix E.2): a 2-byte length with the top bit set,
    // then message type 1 and a version.
    if (
      this.firstRecord &&
      ((header[0] ?? 0) & 0x80) !== 0 &&
      header[2] === HANDSHAKE_CLIENT_HELLO
    ) {
      this.fail('tls.sslv2_client_hello', ts, { version: header.readUInt16BE(3) });
      return;
    }
    this.firstRecord = false;
    const contentType = header.readUInt8(0);
    const length = header.readUInt16BE(3);
    if (contentType !== CONTENT_TYPE_HANDSHAKE || header[1] !== 3) {
      this.fail('tls.bad_record', ts, { contentType, major: header[1] ?? 0 });
      return;
    }
    // RFC 8446 section 5.1: zero-length handshake fragments are not allowed.
    if (length === 0 || length > MAX_PLAINTEXT_FRAGMENT) {
      this.fail('tls.bad_record', ts, { length, limit: MAX_PLAINTEXT_FRAGMENT });
      return;
    }
    this.recordRemaining = length;
    this.state = 'record-body';
  }

  private handshakeBytes(fragment: Buffer, ts: Millis): void {
    let offset = 0;
    if (this.message === null) {
      const take = Math.min(HANDSHAKE_HEADER_BYTES - this.handshakeHeaderFilled, fragment.length);
      fragment.copy(this.handshakeHeader, this.handshakeHeaderFilled, 0, take);
      this.handshakeHeaderFilled += take;
      offset = take;
      if (this.handshakeHeaderFilled < HANDSHAKE_HEADER_BYTES) return;
      if (!this.startMessage(ts)) return;
    }
    const message = this.message;
    if (message === null) return;
    const take = Math.min(message.length - this.messageFilled, fragment.length - offset);
    fragment.copy(message, this.messageFilled, offset, offset + take);
    this.messageFilled += take;
    if (this.messageFilled === message.length) this.finishMessage(message, ts);
  }

  /** RFC 8446 section 4: Handshake { msg_type, uint24 length }. Returns false after a failure. */
  private startMessage(ts: Millis): boolean {
    const msgType = this.handshakeHeader.readUInt8(0);
    const length = this.handshakeHeader.readUIntBE(1, 3);
    if (msgType !== HANDSHAKE_CLIENT_HELLO) {
      this.fail('tls.not_client_hello', ts, { msgType });
      return false;
    }
    if (length > this.limits.maxClientHelloBytes) {
      this.fail('tls.client_hello_too_large', ts, {
        length,
        limit: this.limits.maxClientHelloBytes,
      });
      return false;
    }
    this.message = Buffer.alloc(HANDSHAKE_HEADER_BYTES + length);
    this.handshakeHeader.copy(this.message, 0);
    this.messageFilled = HANDSHAKE_HEADER_BYTES;
    return true;
  }

  private finishMessage(message: Buffer, ts: Millis): void {
    this.state = 'count-only';
    this.message = null;
    const hello = parseClientHello(message);
    if (!hello.ok) {
      this.sink.anomaly(hello.anomaly, ts, { field: hello.field, message: hello.message });
      return;
    }
    const observation: {
      kind: 'tls-client-hello';
      serverName?: string;
      alpn: string[];
      version: number;
    } = {
      kind: 'tls-client-hello',
      alpn: hello.alpn,
      version: hello.version,
    };
    if (hello.serverName !== undefined) observation.serverName = hello.serverName;
    this.sink.observe(observation, ts);
    if (hello.serverName !== undefined) {
      this.sink.observe({ kind: 'remote-name', name: hello.serverName, source: 'sni' }, ts);
    }
  }

  private fail(name: TlsAnomaly, ts: Millis, details: Record<string, string | number>): void {
    this.state = 'count-only';
    this.message = null;
    this.sink.anomaly(name, ts, details);
  }
}
