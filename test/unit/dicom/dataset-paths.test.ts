// Dataset encodings, mid-stream guesses, nesting limits, C-MOVE without identifier and a huge
// P-DATA-TF length inside an association.
import { deflateRawSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { Engine } from '../../../src/engine/engine.js';
import type { Observation } from '../../../src/engine/types.js';
import { Pseudonymizer } from '../../../src/events/pseudonymize.js';
import { MemorySink } from '../../../src/events/sink.js';
import { CidrSet } from '../../../src/policy/cidr.js';
import { loadPolicyText } from '../../../src/policy/load.js';
import { createDicomAnalyzer } from '../../../src/protocols/dicom/index.js';
import { PROTOCOLS } from '../../../src/protocols/registry.js';
import {
  associateAc,
  associateRq,
  CT,
  commandSet,
  DEFLATED,
  EXPLICIT,
  EXPLICIT_BIG,
  explicitDataset,
  fragments,
  hex,
  IMPLICIT,
  implicitDataset,
  implicitElement,
  pdata,
  releaseRp,
  releaseRq,
} from './build.js';
import { FLOW, recordingSink, run, type Step } from './helpers.js';
import { moveAssociationStart, moveCommandFragments, SOP_1, SOP_2 } from './scenarios.js';

type Instance = Extract<Observation, { kind: 'dicom-instance' }>;
type Summary = Extract<Observation, { kind: 'dicom-association' }>['summary'];

const instances = (observations: Observation[]): Instance[] =>
  observations.filter((o): o is Instance => o.kind === 'dicom-instance');
const summaryOf = (observations: Observation[]): Summary | undefined => {
  const summaries = observations.flatMap((o) =>
    o.kind === 'dicom-association' ? [o.summary] : [],
  );
  return summaries.at(-1);
};

/** An association with one CT context in `syntax` storing `dataset` as SOP_1, then release. */
function storeWith(syntax: string, dataset: Buffer, pdvSize = 40): Step[] {
  return [
    {
      side: 0,
      bytes: associateRq('PACS', 'VENDOR_SCP', [
        { id: 1, abstractSyntax: CT, transferSyntaxes: [syntax] },
      ]),
    },
    {
      side: 1,
      bytes: associateAc('PACS', 'VENDOR_SCP', [{ id: 1, result: 0, transferSyntax: syntax }]),
    },
    ...storeMessage(dataset, pdvSize),
    { side: 0, bytes: releaseRq() },
    { side: 1, bytes: releaseRp() },
  ];
}

/** A C-STORE-RQ command and its dataset on context 1, one P-DATA-TF per PDV. */
function storeMessage(dataset: Buffer, pdvSize = 40): Step[] {
  const command = commandSet({
    commandField: 0x0001,
    messageId: 1,
    sopClass: CT,
    sopInstance: SOP_1,
    hasDataset: true,
  });
  return [
    { side: 0, bytes: pdata(...fragments(1, true, command, 200)) },
    ...fragments(1, false, dataset, pdvSize).map((pdv): Step => ({ side: 0, bytes: pdata(pdv) })),
  ];
}

/** Every split offset of every data step gives the same observations and anomalies. */
function expectSplitInvariant(steps: Step[]): void {
  const whole = run(steps);
  steps.forEach((step, index) => {
    if (!('bytes' in step)) return;
    for (let offset = 1; offset < step.bytes.length; offset++) {
      expect(run(steps, (_bytes, at) => (at === index ? [offset] : []))).toEqual(whole);
    }
  });
}

describe('explicit VR big endian', () => {
  test('element header from annotated hex', () => {
    const element = hex(`
      0010 0020   # group, element big endian: (0010,0020) Patient ID
      4c4f        # VR 'LO'
      0008        # length 8, big endian
      46414b4530303032  # 'FAKE0002'
    `);
    expect(element).toEqual(explicitElementBig());
  });

  test('dataset attributes are read', () => {
    const result = run(storeWith(EXPLICIT_BIG, explicitDataset(SOP_2, true)));
    const [instance] = instances(result.observations);
    expect(instance?.attributesStatus).toBe('complete');
    expect(instance?.transferSyntaxUid).toBe(EXPLICIT_BIG);
    expect(instance?.attributes).toEqual({
      sopClassUid: CT,
      sopInstanceUid: SOP_2,
      modality: 'MR',
      patientName: 'TEST^BOB',
      patientId: 'FAKE0002',
      studyInstanceUid: '1.2.826.0.1.3680043.10.999.1.2',
      seriesInstanceUid: '1.2.826.0.1.3680043.10.999.1.2.1',
    });
    expect(result.anomalies).toEqual([]);
  });

  test('little endian reading of the same bytes fails', () => {
    // The same bytes under an explicit VR little endian context do not give the patient.
    const result = run(storeWith(EXPLICIT, explicitDataset(SOP_2, true)));
    expect(instances(result.observations)[0]?.attributes.patientId).toBeUndefined();
  });

  test('every split offset', () => {
    expectSplitInvariant(storeWith(EXPLICIT_BIG, explicitDataset(SOP_2, true)));
  });
});

/** (0010,0020) LO 'FAKE0002' in explicit VR big endian, as explicitDataset writes it. */
function explicitElementBig(): Buffer {
  const dataset = explicitDataset(SOP_2, true);
  const at = dataset.indexOf(Buffer.from([0x00, 0x10, 0x00, 0x20]));
  return dataset.subarray(at, at + 16);
}

describe('deflated transfer syntax', () => {
  const deflated = deflateRawSync(explicitDataset(SOP_2));

  test('attributes are not parsed and bytes are counted', () => {
    const result = run(storeWith(DEFLATED, deflated));
    const [instance] = instances(result.observations);
    expect(instance?.attributesStatus).toBe('not-parsed');
    expect(instance?.transferSyntaxUid).toBe(DEFLATED);
    expect(instance?.datasetBytes).toBe(deflated.length);
    // The command's SOP Class and Instance UID still name the instance.
    expect(instance?.attributes).toEqual({ sopClassUid: CT, sopInstanceUid: SOP_1 });
    const summary = summaryOf(result.observations);
    expect(summary?.instances).toBe(1);
    expect(summary?.datasetBytes).toBe(deflated.length);
    expect(summary?.patients).toEqual([]);
    expect(result.anomalies).toEqual([]);
  });

  test('every split offset', () => {
    expectSplitInvariant(storeWith(DEFLATED, deflated));
  });
});

describe('mid-stream encoding guess', () => {
  // The capture starts at a C-STORE: no association negotiation, so no transfer syntax.
  test('explicit VR little endian is guessed', () => {
    const result = run(storeMessage(explicitDataset(SOP_2)));
    const [instance] = instances(result.observations);
    expect(instance?.attributesStatus).toBe('complete');
    expect(instance?.attributes.patientId).toBe('FAKE0002');
    expect(instance?.attributes.sopInstanceUid).toBe(SOP_2);
    expect(instance?.transferSyntaxUid).toBeUndefined();
    expect(result.anomalies.map((a) => a.name)).toEqual(['dicom.midstream']);
    expect(summaryOf(result.observations)?.midStream).toBe(true);
    expect(summaryOf(result.observations)?.outcome).toBe('incomplete');
  });

  test('implicit VR little endian is guessed', () => {
    const result = run(storeMessage(implicitDataset(SOP_1)));
    const [instance] = instances(result.observations);
    expect(instance?.attributesStatus).toBe('complete');
    expect(instance?.attributes.patientId).toBe('FAKE0001');
  });

  test('guess waits for six bytes across PDVs', () => {
    // PDVs of 4 bytes: the VR at bytes 4-5 arrives in the second PDV.
    const result = run(storeMessage(explicitDataset(SOP_2), 4));
    expect(instances(result.observations)[0]?.attributes.patientId).toBe('FAKE0002');
  });

  test('every split offset', () => {
    expectSplitInvariant(storeMessage(explicitDataset(SOP_2)));
  });
});

describe('nested undefined-length sequences', () => {
  const SEQUENCE = 0x00081115; // Referenced Series Sequence, before the patient attributes
  const undefinedLength = (tag: number) => implicitElement(tag, Buffer.alloc(0)).fill(0xff, 4, 8);
  const ITEM = 0xfffee000;
  const ITEM_END = 0xfffee00d;
  const SEQUENCE_END = 0xfffee0dd;

  /** `levels` nested sequence+item pairs (two depth levels each), closed, then the patient. */
  function nested(levels: number): Buffer {
    const open = Array.from({ length: levels }, () =>
      Buffer.concat([undefinedLength(SEQUENCE), undefinedLength(ITEM)]),
    );
    const close = Array.from({ length: levels }, () =>
      Buffer.concat([
        implicitElement(ITEM_END, Buffer.alloc(0)),
        implicitElement(SEQUENCE_END, Buffer.alloc(0)),
      ]),
    );
    return Buffer.concat([
      implicitElement(0x00080016, CT),
      implicitElement(0x00080018, SOP_1),
      ...open,
      ...close,
      implicitElement(0x00100020, 'FAKE0001'),
      implicitElement(0x0020000d, '1.2.3'),
      implicitElement(0x0020000e, '1.2.3.4'),
    ]);
  }

  test('depth 16 is followed', () => {
    const result = run(storeWith(IMPLICIT, nested(8)));
    const [instance] = instances(result.observations);
    expect(instance?.attributesStatus).toBe('complete');
    expect(instance?.attributes.patientId).toBe('FAKE0001');
    expect(result.anomalies).toEqual([]);
  });

  test('depth limit 16 reached is an anomaly', () => {
    const result = run(storeWith(IMPLICIT, nested(9)));
    const [instance] = instances(result.observations);
    expect(instance?.attributesStatus).toBe('incomplete');
    expect(instance?.attributes.patientId).toBeUndefined();
    expect(instance?.attributes.sopInstanceUid).toBe(SOP_1);
    expect(result.anomalies).toEqual([
      {
        name: 'dicom.bad_dataset',
        details: { side: 0, tag: SEQUENCE, length: 0xffffffff, depth: 16 },
      },
    ]);
    // Parsing goes on: the release still ends the association.
    expect(summaryOf(result.observations)?.outcome).toBe('released');
  });

  test('deep nesting never throws', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 200 }), fc.nat(20), (levels, cut) => {
        const dataset = nested(levels);
        expect(() =>
          run(storeWith(IMPLICIT, dataset.subarray(0, dataset.length - cut)), (bytes) =>
            bytes.length > 7 ? [3, 7] : [],
          ),
        ).not.toThrow();
      }),
      { numRuns: 100 },
    );
  });
});

describe('C-MOVE whose identifier never arrives', () => {
  const start: Step[] = [
    ...moveAssociationStart(),
    { side: 0, bytes: pdata(...moveCommandFragments()) },
  ];
  const moves = (observations: Observation[]) =>
    observations.filter((o) => o.kind === 'dicom-move-request');
  const expected = {
    kind: 'dicom-move-request',
    callingAeTitle: 'VENDOR',
    calledAeTitle: 'ARCHIVE',
    moveDestination: 'EVIL',
  };

  test('flow end reports the move once', () => {
    const result = run(start);
    expect(moves(result.observations)).toEqual([expected]);
    expect(summaryOf(result.observations)?.moveDestinations).toEqual(['EVIL']);
  });

  test('next command reports the move once', () => {
    const echo = commandSet({ commandField: 0x0030, messageId: 8, hasDataset: false });
    const result = run([...start, { side: 0, bytes: pdata(...fragments(1, true, echo, 500)) }]);
    expect(moves(result.observations)).toEqual([expected]);
    expect(summaryOf(result.observations)?.commands).toEqual({ 'C-MOVE-RQ': 1, 'C-ECHO-RQ': 1 });
  });

  test('gap reports the move once', () => {
    const result = run([...start, { side: 0, gap: 100 }]);
    expect(moves(result.observations)).toEqual([expected]);
  });
});

describe('4 GB P-DATA-TF length inside an association', () => {
  const header = hex('04 00 ffffffff   # P-DATA-TF claiming 4294967295 bytes');
  const opening = storeWith(IMPLICIT, implicitDataset(SOP_1)).slice(0, -2);

  test('anomaly, then bytes counted with bounded memory', () => {
    const sink = recordingSink();
    const analyzer = createDicomAnalyzer(FLOW, sink);
    opening.forEach((step, index) => {
      if ('bytes' in step) analyzer.data(step.side, step.bytes, index);
    });
    const before = sink.observations.length;
    analyzer.data(0, header, 100);

    const chunk = Buffer.alloc(1024 * 1024, 0x04);
    const total = 256;
    globalThis.gc?.();
    const baseline = process.memoryUsage();
    for (let i = 0; i < total; i++) analyzer.data(0, chunk, 101 + i);
    const after = process.memoryUsage();
    // 256 MiB passed through; what the analyzer kept is far less than one chunk per step.
    expect(after.arrayBuffers - baseline.arrayBuffers).toBeLessThan(16 * 1024 * 1024);
    expect(after.heapUsed - baseline.heapUsed).toBeLessThan(64 * 1024 * 1024);

    // The responder side is still parsed.
    analyzer.data(1, releaseRp(), 500);
    analyzer.end(501);
    expect(sink.anomalies).toEqual([
      {
        name: 'dicom.pdu_too_large',
        details: { side: 0, type: 4, length: 0xffffffff, limit: 16 * 1024 * 1024 },
      },
    ]);
    expect(
      sink.observations.slice(0, before).filter((o) => o.kind === 'dicom-instance'),
    ).toHaveLength(1);
    const summary = summaryOf(sink.observations);
    expect(summary?.outcome).toBe('released');
    expect(summary?.instances).toBe(1);
    // Bytes after the header are not dataset bytes of any instance.
    expect(summary?.datasetBytes).toBe(implicitDataset(SOP_1).length);
  });

  test('engine still counts the bytes', () => {
    const events = new MemorySink();
    const engine = new Engine({
      policy: loadPolicyText('version: 1\nname: test\nrules: []\n', 'test.yaml', '/tmp'),
      protectedNetworks: CidrSet.parse(['10.0.0.0/8']),
      sink: events,
      pseudonymizer: new Pseudonymizer(Buffer.alloc(32, 7), false),
      mode: 'span',
      protocols: PROTOCOLS,
      observer: { hostname: 'test', version: '0' },
    });
    const flow = engine.openFlow({
      initiator: { ip: '10.1.1.1', port: 40000 },
      responder: { ip: '192.0.2.9', port: 11112 },
      ts: 1,
    });
    let sent = 0;
    for (const step of opening) {
      if (!('bytes' in step)) continue;
      flow.data(step.side, step.bytes, 2);
      if (step.side === 0) sent += step.bytes.length;
    }
    flow.data(0, header, 3);
    const chunk = Buffer.alloc(1024 * 1024, 0x04);
    for (let i = 0; i < 32; i++) flow.data(0, chunk, 4);
    sent += header.length + 32 * chunk.length;
    flow.end(5, 'fin');
    engine.finish(6);

    type FlowEvent = {
      event?: { action?: string };
      source?: { bytes?: number };
      tollgate?: { anomalies?: Record<string, number> };
    };
    const flowEvent = (events.events as FlowEvent[]).find(
      (event) => event.event?.action === 'network-flow',
    );
    expect(flowEvent?.source?.bytes).toBe(sent);
    expect(flowEvent?.tollgate?.anomalies).toEqual({ 'dicom.pdu_too_large': 1 });
  });
});
