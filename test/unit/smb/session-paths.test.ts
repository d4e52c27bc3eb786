// LOGOFF, port 139 NetBIOS session setup, gaps around READ data, and every bounded table of
// the SMB analyzer.
import { describe, expect, test } from 'vitest';
import type { FlowView, Side } from '../../../src/engine/types.js';
import { SmbAnalyzer } from '../../../src/protocols/smb/analyzer.js';
import { DEFAULT_SMB_LIMITS, type SmbLimits } from '../../../src/protocols/smb/limits.js';
import * as b from './build.js';
import { RecordingSink } from './capture.js';

const flow: FlowView = {
  id: 'flow-1',
  initiator: { ip: '203.0.113.20', port: 50000 },
  responder: { ip: '198.51.100.10', port: 139 },
  insideSide: 1,
};

type Step = { side: Side; bytes: Buffer } | { side: Side; gap: number };

const ids = { sessionId: 0x2233n, treeId: 3 };

/** Feeds the steps, each data step split by `split`, and ends the flow. */
function analyze(
  steps: Step[],
  limits: Partial<SmbLimits> = {},
  split: (bytes: Buffer) => Buffer[] = (bytes) => [bytes],
): RecordingSink {
  const sink = new RecordingSink();
  const analyzer = new SmbAnalyzer(flow, sink, { ...DEFAULT_SMB_LIMITS, ...limits });
  steps.forEach((step, index) => {
    if ('gap' in step) {
      analyzer.gap(step.side, step.gap, index);
      return;
    }
    for (const chunk of split(step.bytes)) {
      // A scratch copy overwritten after the call catches views kept past the call.
      const scratch = Buffer.from(chunk);
      analyzer.data(step.side, scratch, index);
      scratch.fill(0xee);
    }
  });
  analyzer.end(steps.length);
  return sink;
}

/** LOGOFF request (MS-SMB2 2.2.7): StructureSize 4, Reserved. */
function logoffRequest(messageId: bigint): Buffer {
  const body = Buffer.alloc(4);
  body.writeUInt16LE(4, 0);
  return Buffer.concat([b.smb2Header({ command: 2, messageId, ...ids }), body]);
}

/** LOGOFF response (MS-SMB2 2.2.8): StructureSize 4, Reserved. */
function logoffResponse(messageId: bigint): Buffer {
  const body = Buffer.alloc(4);
  body.writeUInt16LE(4, 0);
  return Buffer.concat([b.smb2Header({ command: 2, messageId, response: true, ...ids }), body]);
}

/** Logon, tree connect and an open file read in part, before any LOGOFF. */
function openSession(): Step[] {
  const file = b.fileId(1);
  return [
    {
      side: 0,
      bytes: b.netbios(
        b.sessionSetupRequest(1n, ids.sessionId, b.ntlmAuthenticate('HOSPITAL', 'vendor2', 'PC9')),
      ),
    },
    { side: 1, bytes: b.netbios(b.sessionSetupResponse(1n, ids.sessionId)) },
    { side: 0, bytes: b.netbios(b.treeConnectRequest(2n, ids.sessionId, '\\\\fs\\scans')) },
    { side: 1, bytes: b.netbios(b.treeConnectResponse(2n, ids.sessionId, ids.treeId)) },
    { side: 0, bytes: b.netbios(b.createRequest(3n, ids, 'ward\\report.pdf')) },
    { side: 1, bytes: b.netbios(b.createResponse(3n, ids, file, 400)) },
    { side: 0, bytes: b.netbios(b.readRequest(4n, ids, file, 0, 100)) },
    { side: 1, bytes: b.netbios(b.readResponse(4n, ids, Buffer.alloc(100, 0x25))) },
  ];
}

describe('SMB LOGOFF', () => {
  test('request and response end the session', () => {
    const sink = analyze([
      ...openSession(),
      { side: 0, bytes: b.netbios(logoffRequest(5n)) },
      { side: 1, bytes: b.netbios(logoffResponse(5n)) },
    ]);
    const sessions = sink.ofKind('smb-session').map((o) => o.summary);
    expect(sessions).toHaveLength(1);
    expect(sessions[0]?.sessionId).toBe('2233');
    expect(sessions[0]?.outcome).toBe('logoff');
    expect(sessions[0]?.user).toBe('vendor2');
    expect(sessions[0]?.bytesRead).toBe(100);
    const files = sink.ofKind('smb-file-access').map((o) => o.access);
    expect(files).toHaveLength(1);
    expect(files[0]?.path).toBe('ward\\report.pdf');
    expect(files[0]?.outcome).toBe('logoff');
    expect(files[0]?.readFully).toBe(false);
    // The file access comes before the summary of its session.
    expect(sink.observations.findIndex((o) => o.kind === 'smb-file-access')).toBeLessThan(
      sink.observations.findIndex((o) => o.kind === 'smb-session'),
    );
    expect(sink.anomalies).toEqual([]);
  });

  test('request without response leaves the session open', () => {
    const sink = analyze([...openSession(), { side: 0, bytes: b.netbios(logoffRequest(5n)) }]);
    const sessions = sink.ofKind('smb-session').map((o) => o.summary);
    expect(sessions.map((s) => s.outcome)).toEqual(['flow-end']);
    expect(sink.ofKind('smb-file-access').map((o) => o.access.outcome)).toEqual(['flow-end']);
  });

  test('failed LOGOFF response still ends the session', () => {
    // The analyzer ends the session on any LOGOFF response, whatever its status.
    const failed = logoffResponse(5n);
    failed.writeUInt32LE(0xc0000022, 8); // STATUS_ACCESS_DENIED
    const sink = analyze([
      ...openSession(),
      { side: 0, bytes: b.netbios(logoffRequest(5n)) },
      { side: 1, bytes: b.netbios(failed) },
    ]);
    expect(sink.ofKind('smb-session').map((o) => o.summary.outcome)).toEqual(['logoff']);
  });
});

describe('SMB over NetBIOS on port 139', () => {
  // RFC 1002 4.3.2: SESSION REQUEST, type 0x81, with the called and calling names encoded in
  // 34 bytes each (first-level encoding of 16-byte NetBIOS names, RFC 1001 14.1).
  const encodedName = (name: string) => {
    const padded = Buffer.from(name.padEnd(15, ' ').concat('\u0020'), 'latin1');
    const out = Buffer.alloc(34);
    out[0] = 32;
    padded.forEach((byte, index) => {
      out[1 + 2 * index] = 0x41 + (byte >> 4);
      out[2 + 2 * index] = 0x41 + (byte & 0x0f);
    });
    return out;
  };
  const sessionRequest = Buffer.concat([
    Buffer.from([0x81, 0x00, 0x00, 0x44]), // type SESSION REQUEST, flags 0, length 68
    encodedName('FS'),
    encodedName('VENDORPC'),
  ]);
  const positiveResponse = Buffer.from('82000000', 'hex'); // POSITIVE SESSION RESPONSE, length 0
  const keepalive = Buffer.from('85000000', 'hex'); // SESSION KEEP ALIVE, length 0

  const steps: Step[] = [
    { side: 0, bytes: sessionRequest },
    { side: 1, bytes: positiveResponse },
    ...openSession(),
    { side: 0, bytes: keepalive },
    { side: 0, bytes: b.netbios(b.closeRequest(9n, ids, b.fileId(1))) },
    { side: 1, bytes: b.netbios(b.closeResponse(9n, ids)) },
  ];

  test('session request is skipped and SMB2 follows', () => {
    expect(sessionRequest.length).toBe(72);
    const sink = analyze(steps);
    expect(sink.anomalies).toEqual([]);
    const [access] = sink.ofKind('smb-file-access').map((o) => o.access);
    expect(access?.path).toBe('ward\\report.pdf');
    expect(access?.outcome).toBe('close');
  });

  test('session messages count toward session 0', () => {
    // Session 0 is reported only when the flow has no other session.
    const sink = analyze(steps.filter((step) => 'bytes' in step && step.bytes[0] !== 0));
    const sessions = sink.ofKind('smb-session').map((o) => o.summary);
    expect(sessions.map((s) => [s.sessionId, s.bytesBySide])).toEqual([['0', [72 + 4, 4]]]);
    expect(sink.anomalies).toEqual([]);
  });

  test('every split offset of the session request', () => {
    // The session request and the SESSION_SETUP request after it, in one stream.
    const joined = Buffer.concat([sessionRequest, (steps[2] as { bytes: Buffer }).bytes]);
    const joinedSteps = [{ side: 0 as const, bytes: joined }, steps[1]!, ...steps.slice(3)];
    const expected = analyze(joinedSteps);
    expect(expected.ofKind('smb-user').map((o) => o.user)).toEqual(['vendor2']);
    for (let offset = 1; offset < joined.length; offset++) {
      const split = analyze(joinedSteps, {}, (bytes) =>
        bytes === joined ? [bytes.subarray(0, offset), bytes.subarray(offset)] : [bytes],
      );
      expect(split.observations).toEqual(expected.observations);
      expect(split.anomalies).toEqual(expected.anomalies);
    }
  });
});

describe('SMB gaps around READ data', () => {
  const file = b.fileId(6);
  const data = Buffer.alloc(5000, 0x41);
  const response = b.netbios(b.readResponse(2n, ids, data));
  const opening: Step[] = [
    { side: 0, bytes: b.netbios(b.createRequest(1n, ids, 'f.pdf')) },
    { side: 1, bytes: b.netbios(b.createResponse(1n, ids, file, data.length)) },
    { side: 0, bytes: b.netbios(b.readRequest(2n, ids, file, 0, data.length)) },
  ];

  test('gap up to the end of READ data keeps sync', () => {
    const sink = analyze([
      ...opening,
      { side: 1, bytes: response.subarray(0, 1000) },
      { side: 1, gap: response.length - 1000 },
      { side: 0, bytes: b.netbios(b.closeRequest(3n, ids, file)) },
      { side: 1, bytes: b.netbios(b.closeResponse(3n, ids)) },
    ]);
    expect(sink.anomalies).toEqual([
      { name: 'smb.gap', details: { side: 1, length: response.length - 1000, resync: 0 } },
    ]);
    const [access] = sink.ofKind('smb-file-access').map((o) => o.access);
    // 1000 bytes of the message less the 4 + 64 + 16 bytes of headers before the data.
    expect(access?.bytesRead).toBe(1000 - 84);
    expect(access?.readFully).toBe(false);
    expect(access?.outcome).toBe('close');
    const dataBytes = sink.ofKind('smb-file-data').reduce((sum, o) => sum + o.bytes, 0);
    expect(dataBytes).toBe(1000 - 84);
  });

  test('gap past the end of READ data resynchronizes', () => {
    const close = b.netbios(b.closeRequest(3n, ids, file));
    const closeReply = b.netbios(b.closeResponse(3n, ids));
    const sink = analyze([
      ...opening,
      { side: 1, bytes: response.subarray(0, 1000) },
      // The rest of the READ response and the first 10 bytes of the CLOSE response are lost.
      { side: 1, gap: response.length - 1000 + 10 },
      { side: 0, bytes: close },
      { side: 1, bytes: closeReply.subarray(10) },
      { side: 0, bytes: b.netbios(b.createRequest(4n, ids, 'g.pdf')) },
      { side: 1, bytes: b.netbios(b.createResponse(4n, ids, b.fileId(7), 10)) },
    ]);
    expect(sink.anomalies).toEqual([
      { name: 'smb.gap', details: { side: 1, length: response.length - 990, resync: 1 } },
      { name: 'smb.resynced', details: expect.any(Object) },
    ]);
    const paths = sink.ofKind('smb-file-access').map((o) => [o.access.path, o.access.outcome]);
    // The CLOSE response was lost, so f.pdf stays open until the flow ends; g.pdf is parsed.
    expect(paths).toEqual([
      ['f.pdf', 'flow-end'],
      ['g.pdf', 'flow-end'],
    ]);
    expect(sink.ofKind('smb-file-access')[0]?.access.bytesRead).toBe(1000 - 84);
  });

  test('gap split across READ segments counts only what was seen', () => {
    const sink = analyze([
      ...opening,
      { side: 1, bytes: response.subarray(0, 1500) },
      { side: 1, gap: 1000 },
      { side: 1, bytes: response.subarray(2500, 3000) },
      { side: 1, gap: 1000 },
      { side: 1, bytes: response.subarray(4000) },
    ]);
    expect(sink.anomalies.map((a) => a.name)).toEqual(['smb.gap', 'smb.gap']);
    const [access] = sink.ofKind('smb-file-access').map((o) => o.access);
    expect(access?.bytesRead).toBe(data.length - 2000);
    expect(access?.readFully).toBe(false);
  });
});

describe('SMB table_full names its table', () => {
  test('pending-requests', () => {
    const sink = analyze(
      [
        { side: 0, bytes: b.netbios(b.createRequest(1n, ids, 'a')) },
        { side: 0, bytes: b.netbios(b.createRequest(2n, ids, 'b')) },
      ],
      { maxPendingRequests: 1 },
    );
    expect(sink.anomalies).toEqual([
      { name: 'smb.table_full', details: { table: 'pending-requests', maximum: 1 } },
    ]);
  });

  test('shares', () => {
    const sink = analyze(
      [
        { side: 0, bytes: b.netbios(b.treeConnectRequest(1n, ids.sessionId, '\\\\fs\\one')) },
        { side: 1, bytes: b.netbios(b.treeConnectResponse(1n, ids.sessionId, 1)) },
        { side: 0, bytes: b.netbios(b.treeConnectRequest(2n, ids.sessionId, '\\\\fs\\two')) },
        { side: 1, bytes: b.netbios(b.treeConnectResponse(2n, ids.sessionId, 2)) },
      ],
      { maxSharesPerSession: 1 },
    );
    expect(sink.anomalies).toEqual([
      { name: 'smb.table_full', details: { table: 'shares', maximum: 1 } },
    ]);
    const [session] = sink.ofKind('smb-session').map((o) => o.summary);
    expect(session?.shares).toEqual(['\\\\fs\\one']);
  });

  test('files', () => {
    const sink = analyze(
      [
        { side: 0, bytes: b.netbios(b.createRequest(1n, ids, 'a.pdf')) },
        { side: 1, bytes: b.netbios(b.createResponse(1n, ids, b.fileId(1), 5)) },
        { side: 0, bytes: b.netbios(b.createRequest(2n, ids, 'b.pdf')) },
        { side: 1, bytes: b.netbios(b.createResponse(2n, ids, b.fileId(2), 5)) },
      ],
      { maxOpenFiles: 1 },
    );
    expect(sink.anomalies).toEqual([
      { name: 'smb.table_full', details: { table: 'files', maximum: 1 } },
    ]);
    expect(sink.ofKind('smb-file-access').map((o) => o.access.path)).toEqual(['a.pdf']);
  });

  test('read-ranges', () => {
    const file = b.fileId(3);
    const sink = analyze(
      [
        { side: 0, bytes: b.netbios(b.createRequest(1n, ids, 'c.pdf')) },
        { side: 1, bytes: b.netbios(b.createResponse(1n, ids, file, 300)) },
        { side: 0, bytes: b.netbios(b.readRequest(2n, ids, file, 0, 10)) },
        { side: 1, bytes: b.netbios(b.readResponse(2n, ids, Buffer.alloc(10))) },
        // A second range that does not touch the first needs a second table entry.
        { side: 0, bytes: b.netbios(b.readRequest(3n, ids, file, 100, 10)) },
        { side: 1, bytes: b.netbios(b.readResponse(3n, ids, Buffer.alloc(10))) },
      ],
      { maxReadRangesPerFile: 1 },
    );
    expect(sink.anomalies).toEqual([
      { name: 'smb.table_full', details: { table: 'read-ranges', maximum: 1 } },
    ]);
    expect(sink.ofKind('smb-file-access')[0]?.access.bytesRead).toBe(20);
  });

  test('sessions', () => {
    const sink = analyze(
      [
        { side: 1, bytes: b.netbios(b.sessionSetupResponse(1n, 5n)) },
        { side: 1, bytes: b.netbios(b.sessionSetupResponse(2n, 6n)) },
      ],
      { maxSessions: 1 },
    );
    expect(sink.anomalies).toEqual([
      { name: 'smb.table_full', details: { table: 'sessions', maximum: 1 } },
    ]);
    // Messages of the session that did not fit count toward session 0, which is not reported
    // because the flow has another session.
    const summaries = sink.ofKind('smb-session').map((o) => o.summary);
    expect(summaries.map((s) => [s.sessionId, s.bytesBySide])).toEqual([['5', [0, 76]]]);
  });
});
