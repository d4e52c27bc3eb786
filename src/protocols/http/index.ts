// The HTTP/1.x protocol entry: content probe and analyzer factory for the engine.

import type { AnalyzerFactory, AnalyzerSink, FlowView, Side } from '../../engine/types.js';
import { HttpAnalyzer } from './analyzer.js';
import { DEFAULT_HTTP_LIMITS, type HttpLimits } from './limits.js';
import { isTokenChar, STANDARD_METHODS } from './message-parser.js';

export { HttpAnalyzer } from './analyzer.js';
export { hostFromAuthority } from './host.js';
export { DEFAULT_HTTP_LIMITS, type HttpAnomaly, type HttpLimits } from './limits.js';

/** Methods of RFC 9110 and WebDAV (RFC 4918) that a probe accepts without seeing the version. */
const KNOWN_METHODS = new Set([
  ...STANDARD_METHODS,
  'PROPFIND',
  'PROPPATCH',
  'MKCOL',
  'COPY',
  'MOVE',
  'LOCK',
  'UNLOCK',
]);

/** A method token longer than this is not taken for HTTP. */
const MAX_PROBE_METHOD_CHARS = 16;
/** Other tokens need the whole request line; a longer line without LF is not taken for HTTP. */
const MAX_PROBE_LINE_BYTES = 4096;

/**
 * Decides whether a flow is HTTP/1.x from the first bytes the initiator sent: true, false, or
 * undefined while more bytes are needed. A known method followed by SP and the start of a
 * target is enough. Other tokens (which SMTP's `EHLO host` would also match) also need a
 * complete request line ending in ` HTTP/1.0` or ` HTTP/1.1`.
 */
export function probeHttp(side: Side, head: Buffer): boolean | undefined {
  if (side !== 0) return false;
  let space = -1;
  for (let i = 0; i < head.length && i <= MAX_PROBE_METHOD_CHARS; i++) {
    const byte = head[i] ?? 0;
    if (byte === 0x20) {
      space = i;
      break;
    }
    if (!isTokenChar(byte)) return false;
  }
  if (space === -1) return head.length > MAX_PROBE_METHOD_CHARS ? false : undefined;
  if (space === 0) return false;

  const targetStart = head[space + 1];
  if (targetStart === undefined) return undefined;
  if (targetStart === 0x20 || targetStart === 0x0d || targetStart === 0x0a) return false;
  if (KNOWN_METHODS.has(head.toString('latin1', 0, space))) return true;

  const newline = head.indexOf(0x0a, space);
  if (newline === -1) return head.length >= MAX_PROBE_LINE_BYTES ? false : undefined;
  const line = head.toString('latin1', space + 1, newline).replace(/\r$/, '');
  return /^[^ ]+ HTTP\/1\.[01]$/.test(line);
}

export function createHttpAnalyzer(
  flow: FlowView,
  sink: AnalyzerSink,
  limits: Partial<HttpLimits> = {},
): HttpAnalyzer {
  return new HttpAnalyzer(flow, sink, { ...DEFAULT_HTTP_LIMITS, ...limits });
}

export const httpProtocol: {
  name: 'http';
  probe(side: Side, head: Buffer): boolean | undefined;
  create: AnalyzerFactory;
  defaultPorts: number[];
} = {
  name: 'http',
  probe: probeHttp,
  create: (flow, sink) => createHttpAnalyzer(flow, sink),
  defaultPorts: [80, 8080, 8000, 3128],
};
