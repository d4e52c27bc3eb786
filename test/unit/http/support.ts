// Test support shared by the HTTP and TLS analyzer tests: a recording sink, a flow view, and
// the TCP payloads of a capture as tshark reassembles them.

import { execFileSync } from 'node:child_process';
import type { AnalyzerSink, FlowView, Observation, Side } from '../../../src/engine/types.js';

export interface RecordedAnomaly {
  name: string;
  details: Record<string, string | number> | undefined;
}

export class RecordingSink implements AnalyzerSink {
  readonly observations: Observation[] = [];
  readonly anomalies: RecordedAnomaly[] = [];

  observe(observation: Observation): void {
    this.observations.push(observation);
  }

  anomaly(name: string, _ts: number, details?: Record<string, string | number>): void {
    this.anomalies.push({ name, details });
  }

  ofKind<K extends Observation['kind']>(kind: K): Array<Extract<Observation, { kind: K }>> {
    return this.observations.filter(
      (observation): observation is Extract<Observation, { kind: K }> => observation.kind === kind,
    );
  }

  get anomalyNames(): string[] {
    return this.anomalies.map((anomaly) => anomaly.name);
  }
}

export const FLOW: FlowView = {
  id: 'test-flow',
  initiator: { ip: '198.51.100.10', port: 50000 },
  responder: { ip: '203.0.113.20', port: 80 },
  insideSide: 0,
};

/** One TCP payload segment in capture order. */
export interface Segment {
  side: Side;
  bytes: Buffer;
}

/** Builds a buffer from hex written with spaces, newlines and `#` comments. */
export function hex(annotated: string): Buffer {
  const digits = annotated
    .split('\n')
    .map((line) => line.replace(/#.*$/, ''))
    .join('')
    .replace(/\s+/g, '');
  return Buffer.from(digits, 'hex');
}

function tshark(args: string[]): string {
  return execFileSync('tshark', args, {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
}

const streamCache = new Map<string, Map<number, Segment[]>>();

/**
 * Reads the payload segments of every TCP stream in `pcap`, keyed by tshark's stream index.
 * Results are cached per file because each tshark run takes about a second.
 */
export function tcpStreams(pcap: string): Map<number, Segment[]> {
  const cached = streamCache.get(pcap);
  if (cached !== undefined) return cached;
  const indexes = new Set(
    tshark(['-r', pcap, '-T', 'fields', '-e', 'tcp.stream'])
      .split('\n')
      .filter((line) => line !== '')
      .map(Number),
  );
  const streams = new Map<number, Segment[]>();
  for (const index of [...indexes].sort((a, b) => a - b)) {
    streams.set(index, followStream(pcap, index));
  }
  streamCache.set(pcap, streams);
  return streams;
}

/**
 * Parses `tshark -z follow,tcp,raw,N`: hex lines from node 0 (the initiator, which sent the SYN
 * in these captures) and tab-indented hex lines from node 1.
 */
function followStream(pcap: string, index: number): Segment[] {
  const output = tshark(['-r', pcap, '-q', '-z', `follow,tcp,raw,${index}`]);
  const lines = output.split('\n');
  const start = lines.findIndex((line) => line.startsWith('Node 1:'));
  const segments: Segment[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith('=')) break;
    if (line.trim() === '') continue;
    const side: Side = line.startsWith('\t') ? 1 : 0;
    segments.push({ side, bytes: Buffer.from(line.trim(), 'hex') });
  }
  return segments;
}

/** tshark's field values, one array of columns per matching packet. */
export function tsharkFields(pcap: string, filter: string, fields: string[]): string[][] {
  const args = ['-r', pcap, '-Y', filter, '-T', 'fields'];
  for (const field of fields) args.push('-e', field);
  return tshark(args)
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => line.split('\t'));
}

/** Cut points for feeding `length` bytes: every offset when `length` is small, else random ones. */
export function splitOffsets(length: number, maxEvery = 2048): number[][] {
  if (length <= maxEvery) {
    return Array.from({ length: length + 1 }, (_, offset) => [offset]);
  }
  let seed = length;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  return Array.from({ length: 200 }, () =>
    Array.from({ length: 8 }, () => Math.floor(random() * length)).sort((a, b) => a - b),
  );
}

/** Splits `bytes` at the given offsets. */
export function cut(bytes: Buffer, offsets: number[]): Buffer[] {
  const parts: Buffer[] = [];
  let start = 0;
  for (const offset of offsets) {
    parts.push(bytes.subarray(start, offset));
    start = offset;
  }
  parts.push(bytes.subarray(start));
  return parts;
}
