// A span started during a DICOM transfer: the capture begins in the middle of an association.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { writeDicomCapture } from '../../bench/dicom-capture.js';
import { EXIT_OK, runSniff } from '../../src/cli/sniff.js';

/** Copies a classic pcap without its first `skip` records. */
function dropFirstRecords(source: string, target: string, skip: number): void {
  const data = readFileSync(source);
  let offset = 24;
  for (let i = 0; i < skip; i++) offset += 16 + data.readUInt32LE(offset + 8);
  writeFileSync(target, Buffer.concat([data.subarray(0, 24), data.subarray(offset)]));
}

describe('sniff on a capture that starts mid-association', () => {
  it('counts the instances and exits 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-midstream-'));
    const whole = join(dir, 'whole.pcap');
    const made = await writeDicomCapture(whole, {
      targetBytes: 8e6,
      pixelBytes: 256 * 1024,
      instancesPerAssociation: 100,
    });
    const cut = join(dir, 'cut.pcap');
    // Handshake, A-ASSOCIATE-RQ/AC and the first instance's first segments are not captured.
    dropFirstRecords(whole, cut, 12);

    let stderr = '';
    const errors = new PassThrough();
    errors.on('data', (chunk) => {
      stderr += chunk;
    });
    const events = join(dir, 'events.jsonl');
    const status = await runSniff({ input: cut, events }, new PassThrough(), errors);

    expect(status, stderr).toBe(EXIT_OK);
    expect(stderr).toMatch(/picked up mid-stream/);
    const flows = readFileSync(events, 'utf8')
      .split('\n')
      .filter((line) => line.includes('"network-flow"'))
      .map((line) => JSON.parse(line));
    expect(flows).toHaveLength(1);
    expect(flows[0].tollgate.flow.mid_stream).toBe(true);
    expect(flows[0].network.protocol).toBe('dicom');
    const meter = readFileSync(events, 'utf8')
      .split('\n')
      .find((line) => line.includes('"egress-meter"'));
    const instances = JSON.parse(meter!).tollgate.dicom.instances;
    expect(instances).toBeGreaterThanOrEqual(made.instances - 1);
    expect(instances).toBeLessThanOrEqual(made.instances);
  });
});
