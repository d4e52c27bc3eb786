import { describe, expect, test } from 'vitest';
import {
  decodeAbortBody,
  decodeAssociateBody,
  decodeRejectBody,
} from '../../../src/protocols/dicom/associate.js';
import { decodeCommandSet } from '../../../src/protocols/dicom/command-set.js';
import { hex } from './build.js';
import { asKind, run } from './helpers.js';

// A-ASSOCIATE-RQ, PS3.8 section 9.3.2, written out by hand.
const ASSOCIATE_RQ = hex(`
  01 00 000000a2                          # PDU type 1, reserved, length 162
  0001 0000                               # protocol version 1, reserved
  41524348495645202020202020202020        # called AE "ARCHIVE" padded to 16
  56454e444f5220202020202020202020        # calling AE "VENDOR" padded to 16
  ${'00'.repeat(32)}                      # reserved
  10 00 0015 312e322e3834302e31303030382e332e312e312e31   # application context 1.2.840.10008.3.1.1.1
  20 00 002e 01 00 00 00                  # presentation context id 1
     30 00 0011 312e322e3834302e31303030382e312e31        # abstract syntax 1.2.840.10008.1.1 (Verification)
     40 00 0011 312e322e3834302e31303030382e312e32        # transfer syntax 1.2.840.10008.1.2
  50 00 000f                              # user information
     51 00 0004 00004000                  # maximum length 16384
     52 00 0003 312e39                    # implementation class UID "1.9"
`);

describe('association PDUs', () => {
  test('A-ASSOCIATE-RQ items', () => {
    const body = decodeAssociateBody(ASSOCIATE_RQ.subarray(6));
    expect(ASSOCIATE_RQ.readUInt32BE(2)).toBe(ASSOCIATE_RQ.length - 6);
    expect(body).toEqual({
      protocolVersion: 1,
      calledAeTitle: 'ARCHIVE',
      callingAeTitle: 'VENDOR',
      applicationContextName: '1.2.840.10008.3.1.1.1',
      presentationContexts: [
        { id: 1, abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: ['1.2.840.10008.1.2'] },
      ],
      maxPduLength: 16384,
      implementationClassUid: '1.9',
    });
  });

  test('A-ASSOCIATE-RQ item past its record', () => {
    const broken = Buffer.from(ASSOCIATE_RQ.subarray(6));
    // The user information item (at body offset 68 + 25 + 50) claims 0x00ff bytes.
    broken.writeUInt16BE(0x00ff, 68 + 25 + 50 + 2);
    const body = decodeAssociateBody(broken);
    expect(body?.presentationContexts).toHaveLength(1);
    expect(body?.problem).toEqual({ item: 0x50, length: 0xff, available: 15 });
  });

  test('A-ASSOCIATE-RJ and A-ABORT bodies', () => {
    const rejectPdu = hex(
      '03 00 00000004  00 01 01 07   # reserved, result 1 permanent, source 1 user, reason 7 called AE not recognized',
    );
    expect(decodeRejectBody(rejectPdu.subarray(6))).toEqual({ result: 1, source: 1, reason: 7 });
    const abortPdu = hex(
      '07 00 00000004  00 00 02 06   # reserved x2, source 2 provider, reason 6 invalid PDU parameter',
    );
    expect(decodeAbortBody(abortPdu.subarray(6))).toEqual({ source: 2, reason: 6 });
    expect(decodeRejectBody(Buffer.alloc(3))).toBeUndefined();
  });

  test('rejected association summary', () => {
    const result = run([
      { side: 0, bytes: ASSOCIATE_RQ },
      { side: 1, bytes: hex('03 00 00000004 00 01 01 07') },
    ]);
    const summary = result.observations.find((o) => o.kind === 'dicom-association');
    expect(asKind(summary, 'dicom-association').summary.outcome).toBe('rejected');
    expect(asKind(summary, 'dicom-association').summary.rejectReason).toEqual({
      result: 1,
      source: 1,
      reason: 7,
    });
    expect(result.anomalies).toEqual([]);
  });

  test('aborted association summary', () => {
    const result = run([
      { side: 0, bytes: ASSOCIATE_RQ },
      { side: 0, bytes: hex('07 00 00000004 00 00 00 00   # A-ABORT from the service user') },
    ]);
    const summaries = result.observations.filter((o) => o.kind === 'dicom-association');
    expect(summaries).toHaveLength(1);
    expect(asKind(summaries[0], 'dicom-association').summary.outcome).toBe('aborted');
    expect(asKind(summaries[0], 'dicom-association').summary.abortReason).toEqual({
      source: 0,
      reason: 0,
    });
  });
});

describe('P-DATA-TF and DIMSE', () => {
  // C-ECHO-RQ in one PDV, PS3.8 section 9.3.5 and PS3.7 section 9.3.5.
  const ECHO = hex(`
    04 00 0000004a                 # P-DATA-TF, length 74
    00000046 01 03                 # PDV length 70, context 1, command + last fragment
    0000 0000 04000000 38000000    # (0000,0000) Command Group Length = 56
    0000 0200 12000000 312e322e3834302e31303030382e312e3100   # (0000,0002) 1.2.840.10008.1.1 + pad
    0000 0001 02000000 3000        # (0000,0100) Command Field 0x0030 C-ECHO-RQ
    0000 1001 02000000 0100        # (0000,0110) Message ID 1
    0000 0008 02000000 0101        # (0000,0800) Command Data Set Type 0x0101: no dataset
  `);

  test('C-ECHO-RQ command set', () => {
    const decoded = decodeCommandSet(ECHO.subarray(12));
    expect(decoded).toEqual({
      ok: true,
      command: {
        affectedSopClassUid: '1.2.840.10008.1.1',
        commandField: 0x30,
        messageId: 1,
        commandDataSetType: 0x0101,
      },
    });
  });

  test('truncated command set element', () => {
    const truncated = ECHO.subarray(12, ECHO.length - 1);
    expect(decodeCommandSet(truncated)).toEqual({
      ok: false,
      tag: 0x00000800,
      length: 2,
      available: 1,
    });
  });

  test('truncated command set anomaly', () => {
    // The same PDV with its last byte cut and every length reduced by one.
    const bytes = Buffer.from(ECHO.subarray(0, ECHO.length - 1));
    bytes.writeUInt32BE(0x49, 2);
    bytes.writeUInt32BE(0x45, 6);
    const result = run([{ side: 0, bytes }]);
    expect(result.anomalies.map((a) => a.name)).toEqual([
      'dicom.midstream',
      'dicom.bad_command_set',
    ]);
    expect(result.anomalies[1]?.details).toMatchObject({
      tag: 0x00000800,
      length: 2,
      available: 1,
    });
  });

  test('mid-stream C-ECHO is counted', () => {
    const result = run([{ side: 0, bytes: ECHO }]);
    const summary = result.observations.at(-1);
    expect(summary?.kind).toBe('dicom-association');
    if (summary?.kind !== 'dicom-association') return;
    expect(summary.summary.midStream).toBe(true);
    expect(summary.summary.callingAeTitle).toBe('');
    expect(summary.summary.commands).toEqual({ 'C-ECHO-RQ': 1 });
    expect(result.anomalies.map((a) => a.name)).toEqual(['dicom.midstream']);
  });
});
