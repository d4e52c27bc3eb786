// Incremental framing of one direction of an HTTP/1.x connection (RFC 9112).
// The parser splits the byte stream into start line, header fields, body and trailers.
// It keeps only the current line when a line straddles chunks, and never buffers a body:
// body bytes are counted by their framing (Content-Length, chunked, or read until close).

import type { HttpAnomaly, HttpLimits } from './limits.js';

/** The header fields the analyzer reads; other fields are skipped after their syntax check. */
export interface MessageHead {
  /** The three parts of the start line, split at the first two spaces. */
  startLine: [string, string, string];
  host?: string;
  userAgent?: string;
  contentType?: string;
  /** Parsed Content-Length, or undefined when absent. */
  contentLength?: number;
  /** The Transfer-Encoding codings in order, lowercased, or undefined when absent. */
  transferCodings?: string[];
  expectContinue: boolean;
  connectionClose: boolean;
}

/** The framing of the body after a head (RFC 9112 section 6.3). */
export type BodyFraming =
  | { kind: 'none' }
  | { kind: 'length'; length: number }
  | { kind: 'chunked' }
  | { kind: 'until-close' }
  /** Stop parsing this direction: a tunnel, or a flow the analyzer gave up on. */
  | { kind: 'count-only' };

export interface MessageEvents {
  /** Called when the empty line ending the header section is read; returns the body framing. */
  head(head: MessageHead, ts: number): BodyFraming;
  body(bytes: number): void;
  /** Called when the body (and any trailers) ends. Not called for `until-close` bodies. */
  messageEnd(ts: number): void;
  /**
   * A syntax or limit violation. When `fatal` is true the parser has already switched to
   * counting only; otherwise parsing goes on.
   */
  anomaly(
    name: HttpAnomaly,
    ts: number,
    details: Record<string, string | number>,
    fatal: boolean,
  ): void;
}

type State =
  | 'start-line'
  | 'headers'
  | 'body-length'
  | 'chunk-size'
  | 'chunk-data'
  | 'chunk-data-end'
  | 'trailers'
  | 'until-close'
  | 'resync'
  | 'count-only';

/** The start line a resync scan looks for: a request line or a status line. */
export type StartLineKind = 'request' | 'response';

const LF = 0x0a;
const CR = 0x0d;

/** Content-Length values above this (2^53 - 1) cannot be counted exactly in a number. */
const MAX_CONTENT_LENGTH_DIGITS = 15;
/** 13 hex digits keep a chunk size below 2^52. */
const MAX_CHUNK_SIZE_DIGITS = 13;
/**
 * Longest line a resync scan keeps to test as a start line. RFC 9112 section 3 recommends
 * accepting request lines of at least 8000 octets; longer lines are skipped.
 */
const MAX_RESYNC_LINE_BYTES = 8192;

/** RFC 9112 section 3: method SP request-target SP HTTP-version, the method an RFC 9110 token. */
const REQUEST_LINE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [\x21-\x7e]+ HTTP\/1\.[01]\r$/;
/**
 * The methods RFC 9110 section 9 defines. No one of them is a suffix of another, so a request
 * line cut inside its method by a gap cannot pass as one of them.
 */
export const STANDARD_METHODS: ReadonlySet<string> = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
]);
/** RFC 9112 section 4: HTTP-version SP status-code SP [ reason-phrase ]. */
const STATUS_LINE = /^HTTP\/1\.[01] [1-5][0-9]{2}(?: [^\r\n]*)?\r$/;

const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

/** True when every byte of `bytes` is an RFC 9110 token character and there is at least one. */
export function isToken(bytes: Buffer): boolean {
  if (bytes.length === 0) return false;
  for (const b of bytes) if (TCHAR[b] !== 1) return false;
  return true;
}

export function isTokenChar(byte: number): boolean {
  return TCHAR[byte] === 1;
}

export class MessageParser {
  private state: State = 'start-line';
  /** Bytes of the current line seen in earlier chunks (only when a line straddles chunks). */
  private pending: Buffer | null = null;
  private pendingLength = 0;
  /** Bytes of the current header (or trailer) section so far, checked against the limit. */
  private sectionBytes = 0;
  private remaining = 0;
  private head: MessageHead | null = null;
  /** Details of an invalid or conflicting Content-Length in the current head, if any. */
  private contentLengthProblem: Record<string, string | number> | null = null;
  /** The start line the resync scan looks for. */
  private resyncKind: StartLineKind = 'request';
  /** Bytes scanned since the resync began, checked against maxResyncBytes. */
  private resyncScanned = 0;
  /** True while the scan reads the first line after a gap, which may be the tail of a line. */
  private resyncFirstLine = false;
  /** True while the current line is longer than MAX_RESYNC_LINE_BYTES and is being skipped. */
  private resyncLineTooLong = false;

  constructor(
    private readonly events: MessageEvents,
    private readonly limits: HttpLimits,
  ) {}

  /** True while the parser is inside a body delimited by the end of the connection. */
  get readingUntilClose(): boolean {
    return this.state === 'until-close';
  }

  get countingOnly(): boolean {
    return this.state === 'count-only';
  }

  /** Stop parsing; later bytes are ignored. */
  stop(): void {
    this.state = 'count-only';
    this.pending = null;
    this.pendingLength = 0;
  }

  feed(chunk: Buffer, ts: number): void {
    let offset = 0;
    while (offset < chunk.length) {
      switch (this.state) {
        case 'count-only':
          return;
        case 'until-close':
          this.events.body(chunk.length - offset);
          return;
        case 'resync':
          offset = this.scanForStartLine(chunk, offset, ts);
          break;
        case 'body-length':
        case 'chunk-data': {
          const take = Math.min(this.remaining, chunk.length - offset);
          offset += take;
          this.remaining -= take;
          this.events.body(take);
          if (this.remaining === 0) this.finishFramedPart(ts);
          break;
        }
        default:
          offset = this.feedLine(chunk, offset, ts);
      }
    }
  }

  /**
   * Account for `length` bytes that were never seen. Returns false when the gap falls outside a
   * counted body, so the parser lost its place; it then counts only until `resync` is called.
   */
  gap(length: number, ts: number): boolean {
    if (this.state === 'count-only') return true;
    if (this.state === 'resync') {
      this.resyncFirstLine = true;
      this.resyncLineTooLong = false;
      this.pending = null;
      this.pendingLength = 0;
      return true;
    }
    if (this.state === 'until-close') {
      this.events.body(length);
      return true;
    }
    if ((this.state === 'body-length' || this.state === 'chunk-data') && length <= this.remaining) {
      this.remaining -= length;
      this.events.body(length);
      if (this.remaining === 0) this.finishFramedPart(ts);
      return true;
    }
    this.stop();
    return false;
  }

  /**
   * Scan for the next line that is a whole request line (or status line, for `response`) and
   * parse on from there. The first line after a gap may be the tail of a line, so it is taken
   * as a request line only when its method is one RFC 9110 defines. After maxResyncBytes
   * scanned without a match the parser reports 'http.resync_failed' and counts only.
   */
  resync(kind: StartLineKind): void {
    this.state = 'resync';
    this.resyncKind = kind;
    this.resyncScanned = 0;
    this.resyncFirstLine = true;
    this.resyncLineTooLong = false;
    this.pending = null;
    this.pendingLength = 0;
    this.sectionBytes = 0;
    this.head = null;
  }

  /** Consume one line (or the rest of the chunk) while resyncing; returns the next offset. */
  private scanForStartLine(chunk: Buffer, offset: number, ts: number): number {
    const newline = chunk.indexOf(LF, offset);
    const lineEnd = newline === -1 ? chunk.length : newline;
    const next = newline === -1 ? chunk.length : newline + 1;
    this.resyncScanned += next - offset;
    if (this.resyncScanned > this.limits.maxResyncBytes) {
      this.stop();
      this.events.anomaly(
        'http.resync_failed',
        ts,
        { bytes: this.resyncScanned, limit: this.limits.maxResyncBytes },
        true,
      );
      return chunk.length;
    }
    if (this.resyncLineTooLong || this.pendingLength + (lineEnd - offset) > MAX_RESYNC_LINE_BYTES) {
      this.resyncLineTooLong = true;
      this.pending = null;
      this.pendingLength = 0;
    } else if (newline === -1) {
      this.appendPending(chunk.subarray(offset));
    } else {
      let line = chunk.subarray(offset, newline);
      if (this.pending !== null) {
        this.appendPending(line);
        line = this.pending.subarray(0, this.pendingLength);
      }
      if (this.isStartLine(line.toString('latin1'))) {
        const skipped = this.resyncScanned - (line.length + 1);
        this.pending = null;
        this.pendingLength = 0;
        this.sectionBytes = line.length + 1;
        this.startMessage(line.subarray(0, line.length - 1));
        this.events.anomaly('http.resynced', ts, { skipped }, false);
        return next;
      }
    }
    if (newline !== -1) {
      this.pending = null;
      this.pendingLength = 0;
      this.resyncLineTooLong = false;
      this.resyncFirstLine = false;
    }
    return next;
  }

  /** Tests a whole line, CR included, against the start line the resync scan looks for. */
  private isStartLine(text: string): boolean {
    if (this.resyncKind === 'response') return STATUS_LINE.test(text);
    if (!REQUEST_LINE.test(text)) return false;
    return !this.resyncFirstLine || STANDARD_METHODS.has(text.slice(0, text.indexOf(' ')));
  }

  private finishFramedPart(ts: number): void {
    if (this.state === 'chunk-data') {
      this.state = 'chunk-data-end';
      return;
    }
    this.state = 'start-line';
    this.events.messageEnd(ts);
  }

  /** Read up to the end of the current line; returns the offset after what was consumed. */
  private feedLine(chunk: Buffer, offset: number, ts: number): number {
    const newline = chunk.indexOf(LF, offset);
    const end = newline === -1 ? chunk.length : newline;
    const lineLimit = this.lineLimit();
    if (this.pendingLength + (end - offset) > lineLimit) {
      this.reportLineTooLong(this.pendingLength + (end - offset), lineLimit, ts);
      return chunk.length;
    }
    if (newline === -1) {
      this.appendPending(chunk.subarray(offset));
      return chunk.length;
    }

    let line: Buffer;
    if (this.pending === null) {
      line = chunk.subarray(offset, newline);
    } else {
      this.appendPending(chunk.subarray(offset, newline));
      line = this.pending.subarray(0, this.pendingLength);
    }
    const lineLength = line.length + 1;
    if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
    this.handleLine(line, lineLength, ts);
    this.pending = null;
    this.pendingLength = 0;
    return newline + 1;
  }

  private lineLimit(): number {
    if (this.state === 'chunk-size' || this.state === 'chunk-data-end') {
      return this.limits.maxChunkLineBytes;
    }
    return this.limits.maxHeaderBytes - this.sectionBytes;
  }

  private reportLineTooLong(bytes: number, limit: number, ts: number): void {
    const chunkLine = this.state === 'chunk-size' || this.state === 'chunk-data-end';
    this.stop();
    if (chunkLine) {
      this.events.anomaly('http.chunk_line_too_long', ts, { bytes, limit }, true);
    } else {
      this.events.anomaly(
        'http.header_too_large',
        ts,
        {
          bytes: this.sectionBytes + bytes,
          limit: this.limits.maxHeaderBytes,
        },
        true,
      );
    }
  }

  /** Copy a line fragment that straddles chunks; the caller has checked it against the limit. */
  private appendPending(part: Buffer): void {
    const needed = this.pendingLength + part.length;
    if (this.pending === null || this.pending.length < needed) {
      const grown = Buffer.allocUnsafe(
        Math.max(needed, Math.min(256, this.lineLimit()), 2 * this.pendingLength),
      );
      if (this.pending !== null) this.pending.copy(grown, 0, 0, this.pendingLength);
      this.pending = grown;
    }
    part.copy(this.pending, this.pendingLength);
    this.pendingLength = needed;
  }

  private handleLine(line: Buffer, lineLength: number, ts: number): void {
    switch (this.state) {
      case 'start-line':
        // RFC 9112 section 2.2: a recipient ignores empty lines received before a start line.
        if (line.length === 0) return;
        this.sectionBytes = lineLength;
        this.startMessage(line);
        return;
      case 'headers':
        this.sectionBytes += lineLength;
        if (line.length === 0) {
          this.endHeaders(ts);
        } else {
          this.headerLine(line, ts);
        }
        return;
      case 'chunk-size':
        this.chunkSizeLine(line, ts);
        return;
      case 'chunk-data-end':
        if (line.length !== 0) {
          this.stop();
          this.events.anomaly(
            'http.bad_chunk',
            ts,
            { reason: 'missing CRLF after chunk data' },
            true,
          );
          return;
        }
        this.state = 'chunk-size';
        return;
      case 'trailers':
        this.sectionBytes += lineLength;
        if (line.length === 0) {
          this.state = 'start-line';
          this.sectionBytes = 0;
          this.events.messageEnd(ts);
        }
        return;
      default:
        return;
    }
  }

  private startMessage(line: Buffer): void {
    const text = line.toString('latin1');
    const first = text.indexOf(' ');
    const second = first === -1 ? -1 : text.indexOf(' ', first + 1);
    let parts: [string, string, string];
    if (first === -1) {
      parts = [text, '', ''];
    } else if (second === -1) {
      parts = [text.slice(0, first), text.slice(first + 1), ''];
    } else {
      parts = [text.slice(0, first), text.slice(first + 1, second), text.slice(second + 1)];
    }
    this.head = { startLine: parts, expectContinue: false, connectionClose: false };
    this.contentLengthProblem = null;
    this.state = 'headers';
  }

  private headerLine(line: Buffer, ts: number): void {
    const head = this.head;
    if (head === null) return;
    // RFC 9112 section 5.2: obsolete line folding continues the previous field value.
    if (line[0] === 0x20 || line[0] === 0x09) {
      this.events.anomaly('http.obsolete_line_folding', ts, {}, false);
      return;
    }
    const colon = line.indexOf(0x3a);
    // RFC 9112 section 5.1: no whitespace is allowed between the field name and the colon.
    if (colon <= 0 || !isToken(line.subarray(0, colon))) {
      this.stop();
      this.events.anomaly('http.bad_header_line', ts, { bytes: line.length }, true);
      return;
    }
    const name = line.toString('latin1', 0, colon).toLowerCase();
    switch (name) {
      case 'host':
        head.host ??= fieldValue(line, colon, 512);
        return;
      case 'user-agent':
        head.userAgent ??= fieldValue(line, colon, this.limits.maxUserAgentChars);
        return;
      case 'content-type':
        head.contentType ??= fieldValue(line, colon, this.limits.maxContentTypeChars);
        return;
      case 'content-length':
        this.contentLengthLine(head, fieldValue(line, colon, 64));
        return;
      case 'transfer-encoding': {
        const codings = fieldValue(line, colon, 256)
          .toLowerCase()
          .split(',')
          .map((coding) => coding.trim())
          .filter((coding) => coding.length > 0);
        head.transferCodings = [...(head.transferCodings ?? []), ...codings];
        return;
      }
      case 'expect':
        if (fieldValue(line, colon, 64).toLowerCase() === '100-continue')
          head.expectContinue = true;
        return;
      case 'connection':
        if (/(^|,)\s*close\s*(,|$)/i.test(fieldValue(line, colon, 256)))
          head.connectionClose = true;
        return;
      default:
        return;
    }
  }

  private contentLengthLine(head: MessageHead, value: string): void {
    // RFC 9110 section 8.6: a list of identical values may be treated as one value.
    const values = new Set(value.split(',').map((item) => item.trim()));
    const [only] = values;
    const digits = values.size === 1 && only !== undefined && /^[0-9]+$/.test(only) ? only : null;
    if (digits === null || digits.length > MAX_CONTENT_LENGTH_DIGITS) {
      this.contentLengthProblem ??= { chars: value.length, maxDigits: MAX_CONTENT_LENGTH_DIGITS };
      return;
    }
    const length = Number(digits);
    if (head.contentLength !== undefined && head.contentLength !== length) {
      this.contentLengthProblem ??= { first: head.contentLength, second: length };
      return;
    }
    head.contentLength = length;
  }

  private endHeaders(ts: number): void {
    const head = this.head;
    this.head = null;
    this.sectionBytes = 0;
    if (head === null) return;
    if (this.contentLengthProblem !== null) {
      // RFC 9112 section 6.3: Transfer-Encoding overrides Content-Length, so an invalid
      // Content-Length only breaks framing when there is no Transfer-Encoding.
      if (head.transferCodings === undefined) {
        this.stop();
        this.events.anomaly('http.bad_content_length', ts, this.contentLengthProblem, true);
        return;
      }
      this.events.anomaly('http.ambiguous_length', ts, this.contentLengthProblem, false);
      delete head.contentLength;
    }
    const framing = this.events.head(head, ts);
    if (this.state === 'count-only') return;
    switch (framing.kind) {
      case 'none':
        this.state = 'start-line';
        this.events.messageEnd(ts);
        return;
      case 'length':
        if (framing.length === 0) {
          this.state = 'start-line';
          this.events.messageEnd(ts);
          return;
        }
        this.state = 'body-length';
        this.remaining = framing.length;
        return;
      case 'chunked':
        this.state = 'chunk-size';
        return;
      case 'until-close':
        this.state = 'until-close';
        return;
      case 'count-only':
        this.stop();
        return;
    }
  }

  /** RFC 9112 section 7.1: chunk-size [ chunk-ext ] CRLF, with the size in hex. */
  private chunkSizeLine(line: Buffer, ts: number): void {
    let digits = 0;
    let size = 0;
    while (digits < line.length) {
      const value = hexValue(line[digits] ?? 0);
      if (value < 0) break;
      size = size * 16 + value;
      digits++;
    }
    const rest = line[digits];
    const validEnd = rest === undefined || rest === 0x3b || rest === 0x20 || rest === 0x09;
    if (digits === 0 || digits > MAX_CHUNK_SIZE_DIGITS || !validEnd) {
      this.stop();
      this.events.anomaly(
        'http.bad_chunk',
        ts,
        {
          reason: 'invalid chunk-size line',
          digits,
          maxDigits: MAX_CHUNK_SIZE_DIGITS,
        },
        true,
      );
      return;
    }
    if (size === 0) {
      this.state = 'trailers';
      this.sectionBytes = 0;
      return;
    }
    this.state = 'chunk-data';
    this.remaining = size;
  }
}

/** Extracts the field value after the colon without surrounding whitespace, cut to `maxChars`. */
function fieldValue(line: Buffer, colon: number, maxChars: number): string {
  let start = colon + 1;
  let end = line.length;
  while (start < end && (line[start] === 0x20 || line[start] === 0x09)) start++;
  while (end > start && (line[end - 1] === 0x20 || line[end - 1] === 0x09)) end--;
  return line.toString('latin1', start, Math.min(end, start + maxChars));
}

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x37;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x57;
  return -1;
}
