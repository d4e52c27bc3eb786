// The TLS protocol entry: content probe and analyzer factory for the engine.

import type { AnalyzerFactory, AnalyzerSink, FlowView, Side } from '../../engine/types.js';
import { DEFAULT_TLS_LIMITS, TlsAnalyzer, type TlsLimits } from './analyzer.js';

export { DEFAULT_TLS_LIMITS, TlsAnalyzer, type TlsAnomaly, type TlsLimits } from './analyzer.js';
export {
  type ClientHelloInfo,
  isGrease,
  type ParseError,
  parseClientHello,
} from './client-hello.js';

/**
 * Decides whether a flow is TLS from the initiator's first bytes: a handshake record
 * (0x16 0x03 0x00..0x04) whose first handshake message is a ClientHello (type 1), or an
 * SSL 2.0 compatible CLIENT-HELLO, which the analyzer reports as an anomaly. Returns undefined
 * while fewer than 6 bytes are known and those agree.
 */
export function probeTls(side: Side, head: Buffer): boolean | undefined {
  if (side !== 0) return false;
  const first = head[0];
  if (first === undefined) return undefined;
  if ((first & 0x80) !== 0) return probeSsl2(head);
  const expected: Array<(byte: number) => boolean> = [
    (byte) => byte === 0x16,
    (byte) => byte === 0x03,
    (byte) => byte <= 0x04,
    () => true,
    () => true,
    (byte) => byte === 0x01,
  ];
  for (const [index, check] of expected.entries()) {
    const byte = head[index];
    if (byte === undefined) return undefined;
    if (!check(byte)) return false;
  }
  return true;
}

/** SSL 2.0 record: 2-byte length with the top bit set, CLIENT-HELLO (1), version 0x0002 or 3.x. */
function probeSsl2(head: Buffer): boolean | undefined {
  if (head.length < 5) return undefined;
  const version = head.readUInt16BE(3);
  return head[2] === 0x01 && (version === 0x0002 || (version >= 0x0300 && version <= 0x0304));
}

export function createTlsAnalyzer(
  flow: FlowView,
  sink: AnalyzerSink,
  limits: Partial<TlsLimits> = {},
): TlsAnalyzer {
  return new TlsAnalyzer(flow, sink, { ...DEFAULT_TLS_LIMITS, ...limits });
}

export const tlsProtocol: {
  name: 'tls';
  probe(side: Side, head: Buffer): boolean | undefined;
  create: AnalyzerFactory;
  defaultPorts: number[];
} = {
  name: 'tls',
  probe: probeTls,
  create: (flow, sink) => createTlsAnalyzer(flow, sink),
  defaultPorts: [443, 8443, 636, 993, 995, 465, 990, 2762],
};
