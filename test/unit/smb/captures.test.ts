// The analyzer against captures of real smbd and smbclient sessions (scripts/fixtures/smb/record.sh),
// checked against facts.json and against tshark's own SMB2 dissector.
import { describe, expect, test } from 'vitest';
import type { FlowView } from '../../../src/engine/types.js';
import { SmbAnalyzer } from '../../../src/protocols/smb/analyzer.js';
import { followStream, RecordingSink, readFacts, type Segment, tsharkFields } from './capture.js';

const flow: FlowView = {
  id: 'capture',
  initiator: { ip: '203.0.113.20', port: 40000 },
  responder: { ip: '198.51.100.10', port: 445 },
  insideSide: 1,
};

function analyzeSegments(
  segments: Segment[],
  split: (bytes: Buffer) => Buffer[] = (bytes) => [bytes],
): RecordingSink {
  const sink = new RecordingSink();
  const analyzer = new SmbAnalyzer(flow, sink);
  for (const segment of segments) {
    for (const chunk of split(segment.bytes)) analyzer.data(segment.side, chunk, 0);
  }
  analyzer.end(1);
  return sink;
}

/** Splits at seeded pseudo-random points, so every run feeds the same chunks. */
function randomSplits(seed: number): (bytes: Buffer) => Buffer[] {
  let state = seed;
  return (bytes) => {
    const out: Buffer[] = [];
    let at = 0;
    while (at < bytes.length) {
      state = (state * 1103515245 + 12345) % 2147483648;
      const size = 1 + (state % 700);
      out.push(bytes.subarray(at, at + size));
      at += size;
    }
    return out;
  };
}

function summary(sink: RecordingSink): unknown {
  const files = sink.ofKind('smb-file-access').map((o) => o.access);
  const dataBytes = sink.ofKind('smb-file-data').reduce((sum, o) => sum + o.bytes, 0);
  return { files, sessions: sink.ofKind('smb-session'), dataBytes, anomalies: sink.anomalies };
}

const facts = readFacts();

describe('smb2-get capture', () => {
  const capture = 'smb2-get.pcap';
  const sink = analyzeSegments(followStream(capture));
  const session = sink.ofKind('smb-session')[0]?.summary;

  test('user matches tshark and facts', () => {
    const users = tsharkFields(capture, 'ntlmssp.auth.username', [
      'ntlmssp.auth.username',
      'ntlmssp.auth.domain',
    ]);
    expect(users).toEqual([[facts.user, facts.domain]]);
    expect(sink.ofKind('smb-user')[0]?.user).toBe(facts.user);
    expect(session?.workstation).toBe(facts.workstation);
    expect(session?.dialect).toBe('2.1');
    expect(session?.auth).toBe('ntlm');
  });

  test('file names match tshark CREATE requests', () => {
    // tshark prints no row for a CREATE of the share root (empty name), so compare named ones.
    const names = tsharkFields(capture, 'smb2.cmd == 5 && smb2.flags.response == 0', [
      'smb2.filename',
    ]).map(([name]) => name);
    const paths = sink
      .ofKind('smb-file-access')
      .map((o) => o.access.path)
      .filter((path) => path !== '');
    expect(paths.sort()).toEqual(names.sort());
  });

  test('bytes read match file sizes and tshark', () => {
    const requested = tsharkFields(capture, 'smb2.cmd == 8 && smb2.flags.response == 0', [
      'smb2.read_length',
    ]);
    const total = requested.reduce((sum, [length]) => sum + Number(length), 0);
    expect(session?.bytesRead).toBe(total);
    const report = sink
      .ofKind('smb-file-access')
      .find((o) => o.access.path.endsWith('report.pdf'))?.access;
    expect(report?.bytesRead).toBe(facts.files['exports\\MUSTERMANN_ERIKA_19640812_report.pdf']);
    expect(report?.readFully).toBe(true);
    const dicom = sink
      .ofKind('smb-file-access')
      .find((o) => o.access.path.endsWith('IM0000.dcm'))?.access;
    expect(dicom?.looksLikeDicom).toBe(true);
    expect(session?.filesReadFully).toBe(2);
    expect(sink.anomalies).toEqual([]);
  });

  test('random splits give the same result', () => {
    const segments = followStream(capture);
    const expected = summary(analyzeSegments(segments));
    for (const seed of [1, 2, 3])
      expect(summary(analyzeSegments(segments, randomSplits(seed)))).toEqual(expected);
  });
});

describe('smb3-signed-mget capture', () => {
  const capture = 'smb3-signed-mget.pcap';
  const segments = followStream(capture);
  const sink = analyzeSegments(segments);
  const session = sink.ofKind('smb-session')[0]?.summary;

  test('session is signed SMB 3.1.1', () => {
    expect(session?.signed).toBe(true);
    expect(session?.dialect).toBe('3.1.1');
    expect(session?.user).toBe(facts.user);
    expect(session?.shares).toContain(facts.share);
  });

  test('recursive get reads every file fully', () => {
    const files = sink.ofKind('smb-file-access').map((o) => o.access);
    for (const name of ['IM0000', 'IM0001', 'IM0002', 'summary.pdf']) {
      const file = files.find((f) => f.path === `exports\\series1\\${name}`);
      expect(file?.bytesRead).toBe(facts.files[`exports\\series1\\${name}`]);
      expect(file?.readFully).toBe(true);
    }
    expect(files.find((f) => f.path === 'exports\\series1\\IM0001')?.looksLikeDicom).toBe(true);
  });

  test('put, rename and delete are reported', () => {
    const written = tsharkFields(capture, 'smb2.cmd == 9 && smb2.flags.response == 0', [
      'smb2.write_length',
    ]);
    const total = written.reduce((sum, [length]) => sum + Number(length), 0);
    expect(session?.bytesWritten).toBe(total);
    expect(total).toBe(facts.uploaded['vendor_notes.pdf']);
    const files = sink.ofKind('smb-file-access').map((o) => o.access);
    expect(files.some((f) => f.renamedTo === 'exports\\vendor_notes_sent.pdf')).toBe(true);
    expect(
      files.some((f) => f.path === 'exports\\vendor_notes_sent.pdf' && f.deleted === true),
    ).toBe(true);
  });

  test('directory listings match tshark', () => {
    const listings = tsharkFields(
      capture,
      'smb2.cmd == 14 && smb2.flags.response == 1 && smb2.nt_status == 0',
      ['smb2.cmd'],
    );
    expect(session?.directoryListings).toBe(listings.length);
  });

  test('one byte at a time gives the same result', () => {
    const bytewise = (bytes: Buffer) =>
      Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));
    expect(summary(analyzeSegments(segments, bytewise))).toEqual(summary(sink));
  });
});

describe('smb3-encrypted capture', () => {
  test('session is encrypted and nothing is invented', () => {
    const sink = analyzeSegments(followStream('smb3-encrypted.pcap'));
    const session = sink.ofKind('smb-session')[0]?.summary;
    expect(session?.encrypted).toBe(true);
    expect(session?.user).toBe(facts.user);
    expect(sink.ofKind('smb-file-access')).toEqual([]);
    expect(sink.ofKind('smb-file-data')).toEqual([]);
    expect((session?.bytesBySide[0] ?? 0) + (session?.bytesBySide[1] ?? 0)).toBeGreaterThan(40_000);
  });
});
