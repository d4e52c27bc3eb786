import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { FlowView, Side } from '../../../src/engine/types.js';
import { SmbAnalyzer } from '../../../src/protocols/smb/analyzer.js';
import { smbProtocol } from '../../../src/protocols/smb/index.js';
import { DEFAULT_SMB_LIMITS, type SmbLimits } from '../../../src/protocols/smb/limits.js';
import * as b from './build.js';
import { RecordingSink } from './capture.js';

const flow: FlowView = {
  id: 'flow-1',
  initiator: { ip: '203.0.113.20', port: 50000 },
  responder: { ip: '198.51.100.10', port: 445 },
  insideSide: 1,
};

interface Step {
  side: Side;
  bytes: Buffer;
}

const ids = { sessionId: 0x1122n, treeId: 7 };
const dicomFile = Buffer.alloc(300, 0x20);
dicomFile.write('DICM', 128, 'latin1');

/** NEGOTIATE, NTLM logon, tree connect, a read of a DICOM-like file, a listing, a rename. */
function smallSession(): Step[] {
  const file = b.fileId(1);
  const dir = b.fileId(2);
  return [
    { side: 1, bytes: b.netbios(b.negotiateResponse(0n, 0x0311)) },
    {
      side: 0,
      bytes: b.netbios(
        b.sessionSetupRequest(2n, ids.sessionId, b.ntlmAuthenticate('HOSPITAL', 'vendor1', 'PC7')),
      ),
    },
    { side: 1, bytes: b.netbios(b.sessionSetupResponse(2n, ids.sessionId)) },
    { side: 0, bytes: b.netbios(b.treeConnectRequest(3n, ids.sessionId, '\\\\fs\\exports')) },
    { side: 1, bytes: b.netbios(b.treeConnectResponse(3n, ids.sessionId, ids.treeId)) },
    { side: 0, bytes: b.netbios(b.createRequest(4n, ids, 'exports\\IM0001')) },
    { side: 1, bytes: b.netbios(b.createResponse(4n, ids, file, dicomFile.length)) },
    { side: 0, bytes: b.netbios(b.readRequest(5n, ids, file, 0, 65536)) },
    { side: 1, bytes: b.netbios(b.readResponse(5n, ids, dicomFile)) },
    { side: 0, bytes: b.netbios(b.setInfoRename(6n, ids, file, 'exports\\IM0001.old')) },
    { side: 1, bytes: b.netbios(b.emptyResponse(17, 6n, ids)) },
    { side: 0, bytes: b.netbios(b.closeRequest(7n, ids, file)) },
    { side: 1, bytes: b.netbios(b.closeResponse(7n, ids)) },
    { side: 0, bytes: b.netbios(b.createRequest(8n, ids, 'exports')) },
    { side: 1, bytes: b.netbios(b.createResponse(8n, ids, dir, 0, true)) },
    { side: 0, bytes: b.netbios(b.queryDirectoryRequest(9n, ids, dir)) },
    { side: 1, bytes: b.netbios(b.queryDirectoryResponse(9n, ids, [24, 32, 40])) },
    // A LOGOFF request: the response builder's layout with the response flag cleared.
    { side: 0, bytes: b.netbios(b.emptyResponse(2, 10n, ids).fill(0, 16, 17)) },
  ];
}

/** Feeds steps, each split into chunks by `split(bytes)`, and returns what the analyzer reported. */
function analyze(
  steps: Step[],
  split: (bytes: Buffer) => Buffer[] = (bytes) => [bytes],
  limits: Partial<SmbLimits> = {},
): RecordingSink {
  const sink = new RecordingSink();
  const analyzer = new SmbAnalyzer(flow, sink, { ...DEFAULT_SMB_LIMITS, ...limits });
  for (const step of steps) {
    for (const chunk of split(step.bytes)) analyzer.data(step.side, chunk, 1000);
  }
  analyzer.end(2000);
  return sink;
}

/** Observations with smb-file-data summed per path, so chunking does not change the result. */
function normalized(sink: RecordingSink): unknown {
  const dataBytes: Record<string, number> = {};
  for (const data of sink.ofKind('smb-file-data')) {
    const key = `${data.operation}:${data.path}`;
    dataBytes[key] = (dataBytes[key] ?? 0) + data.bytes;
  }
  return {
    observations: sink.observations.filter((o) => o.kind !== 'smb-file-data'),
    dataBytes,
    anomalies: sink.anomalies,
  };
}

describe('SMB2 framing', () => {
  test('NetBIOS and SMB2 header from annotated hex', () => {
    const hex = [
      '00 00 00 80', // NetBIOS session message, length 128
      'fe 53 4d 42', // ProtocolId 0xFE 'SMB'
      '40 00 01 00', // StructureSize 64, CreditCharge 1
      '00 00 00 00', // Status STATUS_SUCCESS
      '00 00 01 00', // Command NEGOTIATE, CreditResponse 1
      '01 00 00 00', // Flags SMB2_FLAGS_SERVER_TO_REDIR
      '00 00 00 00', // NextCommand 0
      '00 00 00 00 00 00 00 00', // MessageId 0
      '00 00 00 00 00 00 00 00', // Reserved, TreeId
      '00 00 00 00 00 00 00 00', // SessionId 0
      '00'.repeat(16), // Signature
      '41 00 01 00', // StructureSize 65, SecurityMode signing enabled
      '02 03 00 00', // DialectRevision 0x0302, NegotiateContextCount 0
      '00'.repeat(56), // ServerGuid, Capabilities, sizes, times, buffer fields
    ].join('');
    const sink = analyze([{ side: 1, bytes: Buffer.from(hex.replace(/ /g, ''), 'hex') }]);
    const [session] = sink.ofKind('smb-session');
    expect(session?.summary.dialect).toBe('3.0.2');
    expect(session?.summary.bytesBySide).toEqual([0, 132]);
    expect(sink.anomalies).toEqual([]);
  });

  test('small session reports user, file and listing', () => {
    const sink = analyze(smallSession());
    expect(sink.ofKind('smb-user')).toEqual([
      {
        kind: 'smb-user',
        sessionId: '1122',
        user: 'vendor1',
        domain: 'HOSPITAL',
        workstation: 'PC7',
      },
    ]);
    const [file, dir] = sink.ofKind('smb-file-access').map((o) => o.access);
    expect(file?.path).toBe('exports\\IM0001');
    expect(file?.share).toBe('\\\\fs\\exports');
    expect(file?.bytesRead).toBe(300);
    expect(file?.readFully).toBe(true);
    expect(file?.looksLikeDicom).toBe(true);
    expect(file?.renamedTo).toBe('exports\\IM0001.old');
    expect(file?.disposition).toBe('open');
    expect(dir?.directory).toBe(true);
    const [session] = sink.ofKind('smb-session').map((o) => o.summary);
    expect(session?.auth).toBe('ntlm');
    expect(session?.dialect).toBe('3.1.1');
    expect(session?.filesOpened).toBe(1);
    expect(session?.filesReadFully).toBe(1);
    expect(session?.directoryListings).toBe(1);
    expect(session?.directoryEntries).toBe(3);
    expect(session?.shares).toEqual(['\\\\fs\\exports']);
    expect(sink.anomalies).toEqual([]);
  });

  test('every split offset gives the same result', () => {
    const steps = smallSession();
    const expected = normalized(analyze(steps));
    for (let index = 0; index < steps.length; index++) {
      const step = steps[index] as Step;
      for (let offset = 1; offset < step.bytes.length; offset++) {
        const split = (bytes: Buffer) =>
          bytes === step.bytes ? [bytes.subarray(0, offset), bytes.subarray(offset)] : [bytes];
        expect(normalized(analyze(steps, split))).toEqual(expected);
      }
    }
  });

  test('one byte at a time gives the same result', () => {
    const steps = smallSession();
    const bytewise = (bytes: Buffer) =>
      Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));
    expect(normalized(analyze(steps, bytewise))).toEqual(normalized(analyze(steps)));
  });

  test('multi-credit READ streams across segments', () => {
    const file = b.fileId(3);
    const data = Buffer.alloc(1_000_000, 0x41);
    const steps: Step[] = [
      { side: 0, bytes: b.netbios(b.createRequest(1n, ids, 'export.pdf')) },
      { side: 1, bytes: b.netbios(b.createResponse(1n, ids, file, data.length)) },
      { side: 0, bytes: b.netbios(b.readRequest(2n, ids, file, 0, data.length)) },
      { side: 1, bytes: b.netbios(b.readResponse(2n, ids, data)) },
    ];
    const segments = (bytes: Buffer) => {
      const out: Buffer[] = [];
      for (let at = 0; at < bytes.length; at += 1448) out.push(bytes.subarray(at, at + 1448));
      return out;
    };
    const sink = analyze(steps, segments);
    const pieces = sink.ofKind('smb-file-data');
    expect(pieces.length).toBeGreaterThan(600);
    expect(pieces.reduce((sum, piece) => sum + piece.bytes, 0)).toBe(data.length);
    expect(pieces.every((piece) => piece.senderSide === 1 && piece.path === 'export.pdf')).toBe(
      true,
    );
    const [access] = sink.ofKind('smb-file-access');
    expect(access?.access.readFully).toBe(true);
  });

  test('WRITE counts data and sniffs DICM', () => {
    const file = b.fileId(4);
    const steps: Step[] = [
      { side: 0, bytes: b.netbios(b.createRequest(1n, ids, 'upload.bin', { disposition: 5 })) },
      { side: 1, bytes: b.netbios(b.createResponse(1n, ids, file, 0)) },
      { side: 0, bytes: b.netbios(b.writeRequest(2n, ids, file, 0, dicomFile)) },
    ];
    const sink = analyze(steps);
    const [access] = sink.ofKind('smb-file-access').map((o) => o.access);
    expect(access?.bytesWritten).toBe(300);
    expect(access?.looksLikeDicom).toBe(true);
    expect(access?.disposition).toBe('overwrite-if');
    expect(access?.outcome).toBe('flow-end');
    expect(sink.ofKind('smb-file-data')[0]?.senderSide).toBe(0);
  });

  test('related compound resolves FileId from CREATE', () => {
    const file = b.fileId(9);
    const request = b.netbios(
      ...[
        b.pad8(b.createRequest(1n, ids, 'a.dcm')),
        b.pad8(b.readRequest(2n, ids, b.RELATED, 0, 100, true)),
        b.closeRequest(3n, ids, b.RELATED, true),
      ].map((command, index, all) => {
        if (index < all.length - 1) command.writeUInt32LE(command.length, 20); // NextCommand
        return command;
      }),
    );
    const responses = [
      b.pad8(b.createResponse(1n, ids, file, 10)),
      b.pad8(b.readResponse(2n, ids, Buffer.alloc(10))),
      b.closeResponse(3n, ids),
    ];
    responses[0]?.writeUInt32LE((responses[0] as Buffer).length, 20);
    responses[1]?.writeUInt32LE((responses[1] as Buffer).length, 20);
    const sink = analyze([
      { side: 0, bytes: request },
      { side: 1, bytes: b.netbios(...responses) },
    ]);
    const [access] = sink.ofKind('smb-file-access').map((o) => o.access);
    expect(access?.path).toBe('a.dcm');
    expect(access?.bytesRead).toBe(10);
    expect(access?.readFully).toBe(true);
    expect(access?.outcome).toBe('close');
    expect(sink.anomalies).toEqual([]);
  });

  test('bogus NextCommand is reported and parsing continues', () => {
    const create = b.pad8(b.createRequest(1n, ids, 'x.pdf'));
    create.writeUInt32LE(13, 20); // NextCommand 13: not 8-aligned
    const file = b.fileId(5);
    const sink = analyze([
      { side: 0, bytes: b.netbios(create) },
      { side: 1, bytes: b.netbios(b.createResponse(1n, ids, file, 5)) },
    ]);
    expect(sink.anomalies.map((a) => a.name)).toEqual(['smb.bad_next_command']);
    expect(sink.ofKind('smb-file-access')[0]?.access.path).toBe('x.pdf');
  });

  test('gap inside READ data keeps sync', () => {
    const file = b.fileId(6);
    const response = b.netbios(b.readResponse(2n, ids, Buffer.alloc(5000)));
    const sink = new RecordingSink();
    const analyzer = new SmbAnalyzer(flow, sink);
    analyzer.data(0, b.netbios(b.createRequest(1n, ids, 'f.pdf')), 1);
    analyzer.data(1, b.netbios(b.createResponse(1n, ids, file, 5000)), 1);
    analyzer.data(0, b.netbios(b.readRequest(2n, ids, file, 0, 5000)), 1);
    analyzer.data(1, response.subarray(0, 1000), 1);
    analyzer.gap(1, 1000, 1);
    analyzer.data(1, response.subarray(2000), 1);
    analyzer.data(0, b.netbios(b.closeRequest(3n, ids, file)), 1);
    analyzer.data(1, b.netbios(b.closeResponse(3n, ids)), 1);
    analyzer.end(2);
    expect(sink.anomalies).toEqual([
      { name: 'smb.gap', details: { side: 1, length: 1000, resync: 0 } },
    ]);
    const [access] = sink.ofKind('smb-file-access').map((o) => o.access);
    expect(access?.bytesRead).toBe(4000);
    expect(access?.readFully).toBe(false);
    expect(access?.outcome).toBe('close');
  });

  test('garbage before a header resynchronizes', () => {
    const garbage = Buffer.from('41424344454647484950', 'hex');
    const sink = analyze([
      { side: 0, bytes: Buffer.concat([garbage, b.netbios(b.createRequest(1n, ids, 'g.pdf'))]) },
      { side: 1, bytes: b.netbios(b.createResponse(1n, ids, b.fileId(7), 5)) },
    ]);
    expect(sink.anomalies.map((a) => a.name)).toEqual(['smb.bad_netbios_length', 'smb.resynced']);
    expect(sink.ofKind('smb-file-access')[0]?.access.path).toBe('g.pdf');
  });

  test('transform header marks the session encrypted', () => {
    const transform = Buffer.alloc(52 + 100);
    transform.write('fd534d42', 0, 'hex');
    transform.writeBigUInt64LE(0x77n, 44); // SessionId
    const sink = analyze([{ side: 0, bytes: b.netbios(transform) }]);
    const [session] = sink.ofKind('smb-session').map((o) => o.summary);
    expect(session?.sessionId).toBe('77');
    expect(session?.encrypted).toBe(true);
    expect(session?.bytesBySide).toEqual([156, 0]);
  });

  test('SMB1 message marks the flow legacy', () => {
    const smb1 = Buffer.alloc(40);
    smb1.write('ff534d42', 0, 'hex');
    const sink = analyze([{ side: 0, bytes: b.netbios(smb1) }]);
    expect(sink.ofKind('smb-session')[0]?.summary.legacySmb1).toBe(true);
  });

  test('anonymous NTLM logon', () => {
    const token = b.ntlmAuthenticate('', '', 'PC7', 0);
    const sink = analyze([
      { side: 0, bytes: b.netbios(b.sessionSetupRequest(1n, 5n, token)) },
      { side: 1, bytes: b.netbios(b.sessionSetupResponse(1n, 5n, 0x2)) },
    ]);
    expect(sink.ofKind('smb-session')[0]?.summary.auth).toBe('anonymous');
    expect(sink.ofKind('smb-user')).toEqual([]);
  });

  test('Kerberos AP-REQ is recognized', () => {
    const token = Buffer.from(`6082010006092a864886f7120102020100${'6e'.padEnd(40, '0')}`, 'hex');
    const sink = analyze([
      { side: 0, bytes: b.netbios(b.sessionSetupRequest(1n, 0n, token)) },
      { side: 1, bytes: b.netbios(b.sessionSetupResponse(1n, 8n)) },
    ]);
    const sessions = sink.ofKind('smb-session').map((o) => o.summary);
    expect(sessions.find((s) => s.sessionId === '8')?.auth).toBe('kerberos');
  });

  test('NTLM field beyond the message is an anomaly', () => {
    const token = b.ntlmAuthenticate('D', 'u', 'w');
    token.writeUInt32LE(0xffff, 36 + 4); // UserNameFields.BufferOffset far past the end
    const sink = analyze([{ side: 0, bytes: b.netbios(b.sessionSetupRequest(1n, 5n, token)) }]);
    expect(sink.anomalies.map((a) => a.name)).toEqual(['smb.bad_ntlmssp']);
  });
});

describe('SMB limits', () => {
  test('lowered maxPendingRequests reports table_full', () => {
    const sink = analyze(
      [
        { side: 0, bytes: b.netbios(b.createRequest(1n, ids, 'a')) },
        { side: 0, bytes: b.netbios(b.createRequest(2n, ids, 'b')) },
      ],
      undefined,
      { maxPendingRequests: 1 },
    );
    expect(sink.anomalies).toEqual([
      { name: 'smb.table_full', details: { table: 'pending-requests', maximum: 1 } },
    ]);
  });

  test('lowered maxMessageLength reports bad_netbios_length', () => {
    const sink = analyze(
      [{ side: 0, bytes: b.netbios(b.createRequest(1n, ids, 'a')) }],
      undefined,
      { maxMessageLength: 100 },
    );
    expect(sink.anomalies[0]).toEqual({
      name: 'smb.bad_netbios_length',
      details: { length: 122, maximum: 100 },
    });
  });

  test('lowered maxBufferedCommand skips a large CREATE', () => {
    const sink = analyze(
      [{ side: 0, bytes: b.netbios(b.createRequest(1n, ids, 'long-name.pdf')) }],
      undefined,
      {
        maxBufferedCommand: 100,
      },
    );
    expect(sink.anomalies.map((a) => a.name)).toEqual(['smb.command_too_large']);
  });

  test('lowered maxBufferedCommand still streams a listing', () => {
    const dir = b.fileId(2);
    const steps: Step[] = [
      { side: 0, bytes: b.netbios(b.queryDirectoryRequest(9n, ids, dir)) },
      { side: 1, bytes: b.netbios(b.queryDirectoryResponse(9n, ids, [24, 32, 40, 16])) },
    ];
    const sink = analyze(steps, undefined, { maxBufferedCommand: 80 });
    expect(sink.ofKind('smb-session')[0]?.summary.directoryEntries).toBe(4);
  });

  test('lowered maxDirectoryEntries stops counting', () => {
    const steps: Step[] = [
      { side: 0, bytes: b.netbios(b.queryDirectoryRequest(9n, ids, b.fileId(2))) },
      { side: 1, bytes: b.netbios(b.queryDirectoryResponse(9n, ids, [24, 32, 40, 16])) },
    ];
    const sink = analyze(steps, undefined, { maxDirectoryEntries: 2 });
    expect(sink.anomalies.map((a) => a.name)).toEqual(['smb.bad_directory_entry']);
    expect(sink.ofKind('smb-session')[0]?.summary.directoryEntries).toBe(2);
  });

  test('lowered maxAnomaliesPerName suppresses repeats', () => {
    const unknown = b.smb2Header({ command: 0x99, messageId: 1n });
    const steps = Array.from({ length: 5 }, () => ({ side: 0 as Side, bytes: b.netbios(unknown) }));
    const sink = analyze(steps, undefined, { maxAnomaliesPerName: 2 });
    expect(sink.anomalies.map((a) => a.name)).toEqual([
      'smb.unknown_command',
      'smb.unknown_command',
      'smb.anomalies_suppressed',
    ]);
  });
});

describe('SMB robustness', () => {
  test('random bytes never throw', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom<Side>(0, 1), fc.uint8Array({ maxLength: 300 }))),
        (chunks) => {
          analyze(chunks.map(([side, bytes]) => ({ side, bytes: Buffer.from(bytes) })));
        },
      ),
    );
  });

  test('mutated session never throws', () => {
    const steps = smallSession();
    fc.assert(
      fc.property(
        fc.nat(steps.length - 1),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 8,
        }),
        fc.integer({ min: 1, max: 64 }),
        (index, edits, chunkSize) => {
          const mutated = steps.map((step) => ({
            side: step.side,
            bytes: Buffer.from(step.bytes),
          }));
          const target = (mutated[index] as Step).bytes;
          for (const [at, value] of edits) target[at % target.length] = value;
          const chunks = (bytes: Buffer) => {
            const out: Buffer[] = [];
            for (let at = 0; at < bytes.length; at += chunkSize)
              out.push(bytes.subarray(at, at + chunkSize));
            return out;
          };
          analyze(mutated, chunks);
        },
      ),
    );
  });
});

describe('smbProtocol.probe', () => {
  test('recognizes SMB2, transform, SMB1 and session request', () => {
    expect(smbProtocol.probe(0, Buffer.from('00000040fe534d42', 'hex'))).toBe(true);
    expect(smbProtocol.probe(0, Buffer.from('00000040fd534d42', 'hex'))).toBe(true);
    expect(smbProtocol.probe(0, Buffer.from('00000040ff534d42', 'hex'))).toBe(true);
    expect(smbProtocol.probe(0, Buffer.from('81000044', 'hex'))).toBe(true);
  });

  test('rejects other content and waits for more', () => {
    expect(smbProtocol.probe(0, Buffer.from('GET / HTTP/1.1', 'latin1'))).toBe(false);
    expect(smbProtocol.probe(0, Buffer.from('0000004041424344', 'hex'))).toBe(false);
    expect(smbProtocol.probe(0, Buffer.from('000000', 'hex'))).toBeUndefined();
    expect(smbProtocol.defaultPorts).toEqual([445, 139]);
  });
});
