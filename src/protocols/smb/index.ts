// The SMB2/3 protocol entry point: content probe, default ports and the analyzer factory.
import type { AnalyzerFactory, Side } from '../../engine/types.js';
import { SmbAnalyzer } from './analyzer.js';
import { hasProtocolId } from './header.js';
import { DEFAULT_SMB_LIMITS, type SmbLimits } from './limits.js';

export { SmbAnalyzer } from './analyzer.js';
export { SmbAnomaly } from './anomalies.js';
export { DEFAULT_SMB_LIMITS, type SmbLimits } from './limits.js';

const NETBIOS_SESSION_MESSAGE = 0x00;
const NETBIOS_SESSION_REQUEST = 0x81;

/**
 * Returns true for a NetBIOS session message carrying 0xFE/0xFD/0xFF 'SMB', or a NetBIOS session
 * request (port 139); false for anything else; undefined while fewer than 8 bytes are known.
 */
function probe(_side: Side, head: Buffer): boolean | undefined {
  if (head.length >= 1 && head[0] === NETBIOS_SESSION_REQUEST)
    return head.length >= 4 ? true : undefined;
  if (head.length >= 1 && head[0] !== NETBIOS_SESSION_MESSAGE) return false;
  if (head.length < 8) return undefined;
  return (
    hasProtocolId(head, 4, 0xfe) || hasProtocolId(head, 4, 0xfd) || hasProtocolId(head, 4, 0xff)
  );
}

/** Builds a factory whose analyzers use `limits` in place of the defaults. */
export function createSmbAnalyzerFactory(limits: Partial<SmbLimits> = {}): AnalyzerFactory {
  const merged: SmbLimits = { ...DEFAULT_SMB_LIMITS, ...limits };
  return (flow, sink) => new SmbAnalyzer(flow, sink, merged);
}

export const smbProtocol: {
  name: 'smb';
  probe(side: Side, head: Buffer): boolean | undefined;
  create: AnalyzerFactory;
  defaultPorts: number[];
} = {
  name: 'smb',
  probe,
  create: createSmbAnalyzerFactory(),
  defaultPorts: [445, 139],
};
