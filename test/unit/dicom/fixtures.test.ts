// The captures made by scripts/fixtures/dicom/record.sh, checked against what the script sent
// and against tshark's DICOM dissector reading the same files.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import type { Observation } from '../../../src/engine/types.js';
import { run, type Step } from './helpers.js';
import { readTcpConnections } from './pcap-streams.js';

const DIR = new URL('../../fixtures/dicom/', import.meta.url).pathname;
const hasTshark = existsSync('/usr/bin/tshark');

interface Expected {
  ports: Record<string, number>;
  instancesSent: number;
  senderIp: string;
  instances: Array<{ sopInstanceUid: string; patientId: string; studyInstanceUid: string }>;
  moveDestination?: string;
}

function analyze(name: string, split?: (bytes: Buffer) => number[]) {
  const observations: Array<{
    connection: string;
    senderIp: string | undefined;
    observation: Observation;
  }> = [];
  const anomalies: string[] = [];
  for (const connection of readTcpConnections(`${DIR}${name}.pcap`)) {
    const steps: Step[] = connection.segments.map((segment) => ({
      side: segment.side,
      bytes: segment.payload,
    }));
    const result = run(steps, split);
    const ips = [connection.client.split(':')[0], connection.server.split(':')[0]];
    for (const observation of result.observations) {
      const senderIp =
        observation.kind === 'dicom-instance' ? ips[observation.senderSide] : undefined;
      observations.push({ connection: connection.client, senderIp, observation });
    }
    anomalies.push(...result.anomalies.map((a) => a.name));
  }
  return { observations, anomalies };
}

/** SOP Instance UIDs of the C-STORE-RQ messages tshark finds in a capture. */
function tsharkStoredUids(name: string, ports: number[]): string[] {
  const args = ['-r', `${DIR}${name}.pcap`, '-o', 'tcp.reassemble_out_of_order:TRUE'];
  for (const port of ports) args.push('-d', `tcp.port==${port},dicom`);
  const text = execFileSync('/usr/bin/tshark', [...args, '-Y', 'dicom', '-V'], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const uids: string[] = [];
  let inStoreRequest = false;
  for (const line of text.split('\n')) {
    if (/^\s+PDV, /.test(line)) inStoreRequest = /PDV, C-STORE-RQ /.test(line);
    const match = /\(0000,1000\)\s+\d+ Affected SOP Instance UID\s+(\S+)/.exec(line);
    if (match && inStoreRequest) uids.push(match[1]!);
  }
  return uids;
}

describe.each(['store', 'move', 'get'])('%s capture', (name) => {
  const expected = JSON.parse(readFileSync(`${DIR}${name}.json`, 'utf8')) as Expected;
  const result = analyze(name);
  const instances = result.observations.flatMap((o) =>
    o.observation.kind === 'dicom-instance' ? [{ ...o.observation, senderIp: o.senderIp }] : [],
  );

  test('instances match the script', () => {
    expect(instances).toHaveLength(expected.instancesSent);
    expect(instances.map((i) => i.attributes.sopInstanceUid).sort()).toEqual(
      expected.instances.map((i) => i.sopInstanceUid).sort(),
    );
    expect(instances.map((i) => i.attributes.patientId).sort()).toEqual(
      expected.instances.map((i) => i.patientId).sort(),
    );
    expect(new Set(instances.map((i) => i.senderIp))).toEqual(new Set([expected.senderIp]));
    expect(instances.every((i) => i.attributesStatus === 'complete')).toBe(true);
    expect(result.anomalies).toEqual([]);
  });

  test('summaries count every dataset', () => {
    const summaries = result.observations.flatMap((o) =>
      o.observation.kind === 'dicom-association' ? [o.observation.summary] : [],
    );
    expect(summaries.every((s) => s.outcome === 'released')).toBe(true);
    expect(summaries.reduce((sum, s) => sum + s.instances, 0)).toBe(expected.instancesSent);
    if (expected.moveDestination !== undefined) {
      const moves = result.observations.filter((o) => o.observation.kind === 'dicom-move-request');
      expect(moves.map((m) => m.observation)).toMatchObject([
        {
          kind: 'dicom-move-request',
          moveDestination: expected.moveDestination,
          studyInstanceUid: expected.instances[0]?.studyInstanceUid,
        },
      ]);
    }
  });

  test('random re-splits give the same result', () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const resplit = analyze(name, (bytes) => {
      const cuts = new Set<number>();
      for (let i = 0; i < 4 && bytes.length > 1; i++) cuts.add(1 + (random() % (bytes.length - 1)));
      return [...cuts].sort((a, b) => a - b);
    });
    expect(resplit).toEqual(result);
  });

  test.skipIf(!hasTshark)('tshark finds the same instances', () => {
    const uids = tsharkStoredUids(name, Object.values(expected.ports));
    expect(uids.sort()).toEqual(instances.map((i) => i.attributes.sopInstanceUid).sort());
  });
});
