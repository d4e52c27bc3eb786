import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { probeDicom } from '../../../src/protocols/dicom/index.js';
import { associateRq, CT, hex, IMPLICIT, pdata, pdu } from './build.js';
import { asKind, run, type Step } from './helpers.js';
import { moveAssociation, SOP_1, SOP_2, storeAssociation } from './scenarios.js';

/** Joins the steps of one scenario into per-side runs so split offsets cross PDU boundaries. */
function singleStream(steps: Step[]): Buffer {
  return Buffer.concat(steps.map((step) => ('bytes' in step ? step.bytes : Buffer.alloc(0))));
}

describe('store association', () => {
  const baseline = run(storeAssociation());

  test('instances and summary', () => {
    const instances = baseline.observations.filter((o) => o.kind === 'dicom-instance');
    expect(
      instances.map((o) => o.kind === 'dicom-instance' && o.attributes.sopInstanceUid),
    ).toEqual([SOP_1, SOP_2]);
    const first = instances[0];
    expect(asKind(first, 'dicom-instance').attributes).toEqual({
      sopClassUid: CT,
      sopInstanceUid: SOP_1,
      modality: 'CT',
      patientName: 'TEST^ALICE',
      patientId: 'FAKE0001',
      studyInstanceUid: '1.2.826.0.1.3680043.10.999.1.1',
      seriesInstanceUid: '1.2.826.0.1.3680043.10.999.1.1.1',
    });
    const summary = baseline.observations.at(-1);
    expect(summary?.kind).toBe('dicom-association');
    if (summary?.kind !== 'dicom-association') return;
    expect(summary.summary.outcome).toBe('released');
    expect(summary.summary.instances).toBe(2);
    expect(summary.summary.commands).toEqual({ 'C-STORE-RQ': 2, 'C-STORE-RSP': 2 });
    expect(summary.summary.failureStatuses).toEqual({ b000: 1 });
    expect(summary.summary.patients).toEqual(['FAKE0001', 'FAKE0002']);
    expect(summary.summary.dataSenderSide).toBe(0);
    expect(baseline.anomalies).toEqual([]);
  });

  test('every split offset', () => {
    const steps = storeAssociation();
    for (let index = 0; index < steps.length; index++) {
      const step = steps[index]!;
      if (!('bytes' in step)) continue;
      for (let cut = 1; cut < step.bytes.length; cut++) {
        const result = run(steps, (_bytes, at) => (at === index ? [cut] : []));
        expect(result).toEqual(baseline);
      }
    }
  });

  test('byte-at-a-time chunks', () => {
    const result = run(storeAssociation(), (bytes) =>
      Array.from({ length: bytes.length - 1 }, (_, i) => i + 1),
    );
    expect(result).toEqual(baseline);
  });

  test('random splits of each direction', () => {
    const side0 = singleStream(storeAssociation().filter((s) => s.side === 0));
    expect(side0.length).toBeGreaterThan(500);
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: side0.length - 1 }), { maxLength: 40 }),
        (cuts) => {
          const sorted = [...cuts].sort((a, b) => a - b);
          const whole = run([{ side: 0, bytes: side0 }]);
          const split = run([{ side: 0, bytes: side0 }], () => sorted);
          expect(split).toEqual(whole);
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('move association', () => {
  test('move request and failure status', () => {
    const result = run(moveAssociation());
    const move = result.observations.find((o) => o.kind === 'dicom-move-request');
    expect(move).toEqual({
      kind: 'dicom-move-request',
      callingAeTitle: 'VENDOR',
      calledAeTitle: 'ARCHIVE',
      moveDestination: 'EVIL',
      studyInstanceUid: '1.2.826.0.1.3680043.10.999.1.1',
    });
    const summary = result.observations.at(-1);
    expect(asKind(summary, 'dicom-association').summary.failureStatuses).toEqual({
      a702: 1,
    });
    expect(asKind(summary, 'dicom-association').summary.moveDestinations).toEqual(['EVIL']);
    expect(result.observations.some((o) => o.kind === 'dicom-instance')).toBe(false);
  });
});

describe('limits and malformed input', () => {
  test('4 GB PDU length', () => {
    const result = run([
      {
        side: 0,
        bytes: hex('04 00 ffffffff 00000010 01 00   # P-DATA-TF claiming 4294967295 bytes'),
      },
    ]);
    expect(result.anomalies).toEqual([
      {
        name: 'dicom.pdu_too_large',
        details: { side: 0, type: 4, length: 0xffffffff, limit: 16 * 1024 * 1024 },
      },
    ]);
  });

  test('lowered maxPduLength', () => {
    const steps = storeAssociation();
    const result = run(steps, undefined, { maxPduLength: 100 });
    expect(result.anomalies.map((a) => a.name)).toContain('dicom.pdu_too_large');
    expect(result.observations.some((o) => o.kind === 'dicom-instance')).toBe(false);
  });

  test('lowered maxAssociateItemsBytes', () => {
    const result = run(storeAssociation(), undefined, { maxAssociateItemsBytes: 64 });
    expect(result.anomalies[0]).toMatchObject({
      name: 'dicom.associate_too_large',
      details: { limit: 64 },
    });
  });

  test('lowered maxCommandSetBytes', () => {
    const result = run(storeAssociation(), undefined, { maxCommandSetBytes: 40 });
    expect(result.anomalies.map((a) => a.name)).toContain('dicom.command_set_too_large');
    const summary = result.observations.at(-1);
    expect(asKind(summary, 'dicom-association').summary.commands.OTHER).toBe(4);
  });

  test('lowered maxLeadingAttributesBytes', () => {
    const result = run(storeAssociation(), undefined, { maxLeadingAttributesBytes: 60 });
    const first = result.observations.find((o) => o.kind === 'dicom-instance');
    expect(asKind(first, 'dicom-instance').attributesStatus).toBe('incomplete');
    expect(asKind(first, 'dicom-instance').attributes.patientId).toBeUndefined();
    // The command's SOP Instance UID still names the instance.
    expect(asKind(first, 'dicom-instance').attributes.sopInstanceUid).toBe(SOP_1);
  });

  test('unknown PDU type', () => {
    const result = run([{ side: 0, bytes: Buffer.from('GET / HTTP/1.1\r\n\r\n') }]);
    expect(result.anomalies[0]?.name).toBe('dicom.unknown_pdu_type');
    expect(result.observations).toEqual([]);
  });

  test('bad PDV length', () => {
    const result = run([
      { side: 0, bytes: hex('04 00 00000008 000000ff 01 03 0000   # PDV claims 255 of 8 bytes') },
    ]);
    expect(result.anomalies.map((a) => a.name)).toEqual(['dicom.bad_item']);
  });

  test('gap resynchronises on next P-DATA-TF', () => {
    const steps = storeAssociation();
    // Drop the side-0 PDUs of the first C-STORE after its command (steps 3 to 6) as a gap.
    const lost = steps.slice(3, 6).reduce((sum, s) => sum + ('bytes' in s ? s.bytes.length : 0), 0);
    const withGap: Step[] = [...steps.slice(0, 3), { side: 0, gap: lost }, ...steps.slice(6)];
    const result = run(withGap);
    expect(result.anomalies.map((a) => a.name)).toContain('dicom.gap');
    const uids = result.observations.flatMap((o) =>
      o.kind === 'dicom-instance' ? [o.attributes.sopInstanceUid] : [],
    );
    expect(uids).toContain(SOP_2);
  });

  test('gap inside a PDU, resync across chunks', () => {
    const command = pdata({ contextId: 1, controlHeader: 3, value: Buffer.alloc(4) });
    const stream = Buffer.concat([Buffer.from([9, 9, 9, 9, 9]), command]);
    const result = run(
      [
        {
          side: 0,
          bytes: associateRq('A', 'B', [
            { id: 1, abstractSyntax: CT, transferSyntaxes: [IMPLICIT] },
          ]),
        },
        { side: 0, gap: 10 },
        { side: 0, bytes: stream },
      ],
      (_bytes, index) => (index === 2 ? [7] : []),
    );
    expect(result.anomalies.map((a) => a.name)).toEqual(['dicom.gap']);
  });
});

describe('probe', () => {
  test('probe decisions', () => {
    const rq = associateRq('A', 'B', [{ id: 1, abstractSyntax: CT, transferSyntaxes: [IMPLICIT] }]);
    expect(probeDicom(0, rq)).toBe(true);
    expect(probeDicom(1, rq)).toBe(false);
    expect(probeDicom(0, rq.subarray(0, 5))).toBeUndefined();
    expect(probeDicom(1, pdata({ contextId: 1, controlHeader: 3, value: Buffer.alloc(8) }))).toBe(
      true,
    );
    expect(probeDicom(1, pdata({ contextId: 2, controlHeader: 3, value: Buffer.alloc(8) }))).toBe(
      false,
    );
    expect(probeDicom(0, Buffer.from('GET / HTTP/1.1\r\n'))).toBe(false);
    expect(probeDicom(0, pdu(0x04, Buffer.alloc(2)))).toBe(false);
  });
});

describe('property: never throws', () => {
  test('random bytes after a valid association start', () => {
    const start = singleStream(storeAssociation().slice(0, 1));
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 400 }),
        fc.boolean(),
        fc.nat(50),
        (bytes, prefix, gap) => {
          const steps: Step[] = [
            ...(prefix ? [{ side: 0 as const, bytes: start }] : []),
            { side: 0, bytes: Buffer.from(bytes) },
            { side: 0, gap },
            { side: 1, bytes: Buffer.from(bytes).reverse() },
          ];
          expect(() =>
            run(steps, (b) => (b.length > 3 ? [1, Math.floor(b.length / 2)] : [])),
          ).not.toThrow();
        },
      ),
      { numRuns: 500 },
    );
  });

  test('mutated store association', () => {
    const stream = singleStream(storeAssociation().filter((s) => s.side === 0));
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(stream.length - 1), fc.integer({ min: 0, max: 255 })), {
          maxLength: 8,
        }),
        (edits) => {
          const bytes = Buffer.from(stream);
          for (const [at, value] of edits) bytes[at] = value;
          const result = run([{ side: 0, bytes }]);
          expect(
            result.observations.filter((o) => o.kind === 'dicom-instance').length,
          ).toBeLessThanOrEqual(2);
        },
      ),
      { numRuns: 300 },
    );
  });
});
