// Test helpers: the reassembled TCP payload of a fixture capture, per direction and in order,
// as tshark's "follow,tcp,raw" prints it, and a sink that records what the analyzer reports.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { AnalyzerSink, Observation, Side } from '../../../src/engine/types.js';

export const FIXTURES = fileURLToPath(new URL('../../fixtures/smb/', import.meta.url));

export interface Facts {
  user: string;
  domain: string;
  workstation: string;
  serverPort: number;
  share: string;
  files: Record<string, number>;
  uploaded: Record<string, number>;
}

export function readFacts(): Facts {
  return JSON.parse(readFileSync(`${FIXTURES}facts.json`, 'utf8')) as Facts;
}

export interface Segment {
  side: Side;
  bytes: Buffer;
}

/** Returns the payload segments of TCP stream 0 of `capture`, in the order tshark reassembled them. */
export function followStream(capture: string): Segment[] {
  const output = execFileSync(
    'tshark',
    ['-r', `${FIXTURES}${capture}`, '-q', '-z', 'follow,tcp,raw,0'],
    {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  const segments: Segment[] = [];
  for (const line of output.split('\n')) {
    const match = /^(\t?)([0-9a-f]+)$/.exec(line);
    if (match === null) continue;
    segments.push({
      side: match[1] === '\t' ? 1 : 0,
      bytes: Buffer.from(match[2] as string, 'hex'),
    });
  }
  return segments;
}

/** Runs tshark with the fixture's port decoded as NetBIOS session service and returns its field rows. */
export function tsharkFields(capture: string, filter: string, fields: string[]): string[][] {
  const port = readFacts().serverPort;
  const args = [
    '-r',
    `${FIXTURES}${capture}`,
    '-d',
    `tcp.port==${port},nbss`,
    '-Y',
    filter,
    '-T',
    'fields',
  ];
  for (const field of fields) args.push('-e', field);
  const output = execFileSync('tshark', args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return output
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => line.split('\t'));
}

export class RecordingSink implements AnalyzerSink {
  readonly observations: Observation[] = [];
  readonly anomalies: Array<{ name: string; details?: Record<string, string | number> }> = [];

  observe(observation: Observation): void {
    this.observations.push(observation);
  }

  anomaly(name: string, _ts: number, details?: Record<string, string | number>): void {
    this.anomalies.push(details === undefined ? { name } : { name, details });
  }

  ofKind<K extends Observation['kind']>(kind: K): Array<Extract<Observation, { kind: K }>> {
    return this.observations.filter((o): o is Extract<Observation, { kind: K }> => o.kind === kind);
  }
}
