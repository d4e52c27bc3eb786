import { expect } from 'vitest';
import type { AnalyzerSink, FlowView, Observation, Side } from '../../../src/engine/types.js';
import { createDicomAnalyzer, type DicomLimits } from '../../../src/protocols/dicom/index.js';

export interface Recorded {
  observations: Observation[];
  anomalies: Array<{ name: string; details?: Record<string, string | number> }>;
}

export const FLOW: FlowView = {
  id: 'test-flow',
  initiator: { ip: '127.0.0.1', port: 40000 },
  responder: { ip: '127.0.0.1', port: 11112 },
  insideSide: 0,
};

export function recordingSink(): AnalyzerSink & Recorded {
  const observations: Observation[] = [];
  const anomalies: Recorded['anomalies'] = [];
  return {
    observations,
    anomalies,
    observe(observation) {
      observations.push(structuredClone(observation));
    },
    anomaly(name, _ts, details) {
      anomalies.push(details === undefined ? { name } : { name, details });
    },
  };
}

/** A chunk of one side's stream, in the order the analyzer receives them. */
export type Step = { side: Side; bytes: Buffer } | { side: Side; gap: number };

/** Feeds the steps, each chunk split at the offsets `split` returns for it, and ends the flow. */
export function run(
  steps: Step[],
  split: (bytes: Buffer, index: number) => number[] = () => [],
  limits: Partial<DicomLimits> = {},
): Recorded {
  const sink = recordingSink();
  const analyzer = createDicomAnalyzer(FLOW, sink, limits);
  steps.forEach((step, index) => {
    if ('gap' in step) {
      analyzer.gap(step.side, step.gap, index);
      return;
    }
    let start = 0;
    for (const cut of [...split(step.bytes, index), step.bytes.length]) {
      // A fresh copy per chunk, overwritten after the call, catches views kept past the call.
      const chunk = Buffer.from(step.bytes.subarray(start, cut));
      analyzer.data(step.side, chunk, index);
      chunk.fill(0xee);
      start = cut;
    }
  });
  analyzer.end(steps.length);
  return { observations: sink.observations, anomalies: sink.anomalies };
}

/** Returns the observation narrowed to `kind`, failing the test when it is of another kind. */
export function asKind<K extends Observation['kind']>(
  observation: Observation | undefined,
  kind: K,
): Extract<Observation, { kind: K }> {
  expect(observation?.kind).toBe(kind);
  return observation as Extract<Observation, { kind: K }>;
}
