// Feeds `tollgate sniff` damaged and hostile input, made in the test from the recorded fixtures or
// written packet by packet: every case must warn with a count, keep the events of the undamaged
// part and end with the documented exit status (0 ok, 1 unreadable, 2 usage, 3 damaged capture or malformed traffic).

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EXIT_FAILED,
  EXIT_INPUT_DAMAGED,
  EXIT_OK,
  EXIT_USAGE,
  runSniff,
} from '../../src/cli/sniff.js';
import { byAction } from './support/events.js';
import { TextCollector } from './support/streams.js';

const repo = join(import.meta.dirname, '..', '..');
const STORE = join(repo, 'test', 'fixtures', 'dicom', 'store.pcap');
const PROTECTED = '198.51.100.0/24';

type EcsEvent = any;

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'tollgate-sniff-bad-'));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

let runCounter = 0;
async function sniff(input: string, protectedNetworks = PROTECTED) {
  const events = join(work, `events-${runCounter++}.jsonl`);
  const stderr = new TextCollector();
  const exitCode = await runSniff(
    { input, events, protected: protectedNetworks },
    new TextCollector(),
    stderr,
  );
  let lines: string[] = [];
  try {
    lines = readFileSync(events, 'utf8').split('\n');
  } catch {
    // No events file: the run stopped before opening its sink.
  }
  const parsed: EcsEvent[] = lines.filter((line) => line !== '').map((line) => JSON.parse(line));
  return { exitCode, events: parsed, stderr: stderr.text };
}

function writeFixture(name: string, data: Buffer): string {
  const path = join(work, name);
  writeFileSync(path, data);
  return path;
}

/** Byte offsets of the record headers of a classic little-endian microsecond pcap. */
function recordOffsets(pcap: Buffer): number[] {
  const offsets: number[] = [];
  let offset = 24;
  while (offset + 16 <= pcap.length) {
    offsets.push(offset);
    offset += 16 + pcap.readUInt32LE(offset + 8);
  }
  return offsets;
}

// --- a minimal pcap writer for hand-made TCP connections -----------------------------------------

const INSIDE = { ip: [198, 51, 100, 10], port: 40000 };

function ipv4Tcp(
  src: { ip: number[]; port: number },
  dst: { ip: number[]; port: number },
  seq: number,
  ack: number,
  flags: number,
  payload: Buffer,
): Buffer {
  const ethernet = Buffer.from('000000000002000000000001' + '0800', 'hex');
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 20 + payload.length, 2);
  ip[8] = 64;
  ip[9] = 6;
  Buffer.from(src.ip).copy(ip, 12);
  Buffer.from(dst.ip).copy(ip, 16);
  const tcp = Buffer.alloc(20);
  tcp.writeUInt16BE(src.port, 0);
  tcp.writeUInt16BE(dst.port, 2);
  tcp.writeUInt32BE(seq >>> 0, 4);
  tcp.writeUInt32BE(ack >>> 0, 8);
  tcp[12] = 5 << 4;
  tcp[13] = flags;
  tcp.writeUInt16BE(65535, 14);
  return Buffer.concat([ethernet, ip, tcp, payload]);
}

const SYN = 0x02;
const ACK = 0x10;
const PSH_ACK = 0x18;
const FIN_ACK = 0x11;

/**
 * A pcap of one complete TCP connection from INSIDE to `remote`: handshake, `payload` sent by
 * the inside host in segments of at most 1448 bytes, FIN from both sides.
 */
function connectionPcap(remote: { ip: number[]; port: number }, payload: Buffer): Buffer {
  const frames: Buffer[] = [];
  let clientSeq = 1000;
  const serverSeq = 5000;
  frames.push(ipv4Tcp(INSIDE, remote, clientSeq, 0, SYN, Buffer.alloc(0)));
  frames.push(ipv4Tcp(remote, INSIDE, serverSeq, clientSeq + 1, SYN | ACK, Buffer.alloc(0)));
  clientSeq += 1;
  frames.push(ipv4Tcp(INSIDE, remote, clientSeq, serverSeq + 1, ACK, Buffer.alloc(0)));
  for (let offset = 0; offset < payload.length; offset += 1448) {
    const segment = payload.subarray(offset, offset + 1448);
    frames.push(ipv4Tcp(INSIDE, remote, clientSeq, serverSeq + 1, PSH_ACK, segment));
    clientSeq += segment.length;
    frames.push(ipv4Tcp(remote, INSIDE, serverSeq + 1, clientSeq, ACK, Buffer.alloc(0)));
  }
  frames.push(ipv4Tcp(INSIDE, remote, clientSeq, serverSeq + 1, FIN_ACK, Buffer.alloc(0)));
  frames.push(ipv4Tcp(remote, INSIDE, serverSeq + 1, clientSeq + 1, FIN_ACK, Buffer.alloc(0)));
  frames.push(ipv4Tcp(INSIDE, remote, clientSeq + 1, serverSeq + 2, ACK, Buffer.alloc(0)));

  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(262144, 16);
  header.writeUInt32LE(1, 20);
  const records = frames.map((frame, index) => {
    const record = Buffer.alloc(16);
    record.writeUInt32LE(1731723240, 0);
    record.writeUInt32LE(index * 100, 4);
    record.writeUInt32LE(frame.length, 8);
    record.writeUInt32LE(frame.length, 12);
    return Buffer.concat([record, frame]);
  });
  return Buffer.concat([header, ...records]);
}

const VENDOR = { ip: [203, 0, 113, 20], port: 104 };
const CLOUD = { ip: [203, 0, 113, 30], port: 443 };

// --- damaged capture files ----------------------------------------------------------------------

describe('sniff on damaged captures', () => {
  it('truncated file keeps earlier events', async () => {
    const pcap = readFileSync(STORE);
    const offsets = recordOffsets(pcap);
    const last = offsets[offsets.length - 1] as number;
    const path = writeFixture('truncated.pcap', pcap.subarray(0, last + 16 + 10));
    const result = await sniff(path);
    expect(result.exitCode).toBe(EXIT_INPUT_DAMAGED);
    expect(result.stderr).toMatch(/1 capture records cut short/);
    expect(byAction(result.events, 'dicom-association').length).toBeGreaterThanOrEqual(2);
  });

  it('corrupt record length skips one record', async () => {
    const pcap = Buffer.from(readFileSync(STORE));
    const offsets = recordOffsets(pcap);
    const middle = offsets[Math.floor(offsets.length / 2)] as number;
    pcap.writeUInt32LE(0xfffffff0, middle + 8);
    const path = writeFixture('corrupt-length.pcap', pcap);
    const result = await sniff(path);
    expect(result.exitCode).toBe(EXIT_INPUT_DAMAGED);
    expect(result.stderr).toMatch(/\d+ corrupt capture records skipped/);
    expect(byAction(result.events, 'dicom-association').length).toBeGreaterThanOrEqual(1);
    expect(byAction(result.events, 'network-flow').length).toBeGreaterThanOrEqual(1);
  });

  it('non-capture file exits 1', async () => {
    const path = writeFixture('notes.txt', Buffer.from('These are not packets.\n'.repeat(20)));
    const result = await sniff(path);
    expect(result.exitCode).toBe(EXIT_FAILED);
    expect(result.stderr).toMatch(/neither pcap nor pcapng/);
  });

  it('empty file exits 1', async () => {
    const path = writeFixture('empty.pcap', Buffer.alloc(0));
    const result = await sniff(path);
    expect(result.exitCode).toBe(EXIT_FAILED);
    expect(result.events).toEqual([]);
  });

  it('missing file exits 1', async () => {
    const result = await sniff(join(work, 'does-not-exist.pcap'));
    expect(result.exitCode).toBe(EXIT_FAILED);
    expect(result.stderr).toContain('does-not-exist.pcap');
  });
});

// --- hostile payloads ---------------------------------------------------------------------------

describe('sniff on hostile payloads', () => {
  it('garbage on port 104 counts bytes', async () => {
    const garbage = randomBytes(64 * 1024);
    // The first byte is an A-ASSOCIATE-RQ type, as a broken DICOM client would send.
    garbage[0] = 0x01;
    const path = writeFixture('garbage-104.pcap', connectionPcap(VENDOR, garbage));
    const result = await sniff(path);
    expect(result.exitCode).toBe(EXIT_INPUT_DAMAGED);
    const [flow] = byAction(result.events, 'network-flow');
    expect(flow.tollgate.egress.bytes).toBe(garbage.length);
    expect(result.stderr, result.stderr).toMatch(/anomaly \S+ x\d+/);
  });

  it('4 GB PDU length is bounded', async () => {
    // An A-ASSOCIATE-RQ header (PS3.8 section 9.3.2) with PDU length 4294967295 and protocol
    // version 1, then 256 kB of filler.
    const pdu = Buffer.alloc(256 * 1024, 0x20);
    pdu.writeUInt8(0x01, 0);
    pdu.writeUInt8(0x00, 1);
    pdu.writeUInt32BE(0xffffffff, 2);
    pdu.writeUInt16BE(0x0001, 6);
    pdu.writeUInt16BE(0x0000, 8);
    pdu.write('VENDOR_SCP      PACS            ', 10, 'latin1');
    const path = writeFixture('pdu-4gb.pcap', connectionPcap(VENDOR, pdu));
    const before = process.memoryUsage().rss;
    const result = await sniff(path);
    const grown = process.memoryUsage().rss - before;
    expect(result.exitCode).toBe(EXIT_INPUT_DAMAGED);
    const [flow] = byAction(result.events, 'network-flow');
    expect(flow.tollgate.egress.bytes).toBe(pdu.length);
    expect(result.stderr, result.stderr).toMatch(/anomaly \S+ x\d+/);
    expect(grown).toBeLessThan(64 * 1024 * 1024);
  });

  it('ClientHello with lying lengths', async () => {
    // TLS record: handshake, TLS 1.0, length 64; handshake: ClientHello claiming 16 MB - 1.
    const hello = Buffer.concat([
      Buffer.from('16 0301 0040'.replace(/ /g, ''), 'hex'),
      Buffer.from('01 ffffff 0303'.replace(/ /g, ''), 'hex'),
      Buffer.alloc(58, 0xee),
      randomBytes(4096),
    ]);
    const path = writeFixture('lying-hello.pcap', connectionPcap(CLOUD, hello));
    const result = await sniff(path);
    expect(result.exitCode).toBe(EXIT_INPUT_DAMAGED);
    const [flow] = byAction(result.events, 'network-flow');
    expect(flow.tollgate.egress.bytes).toBe(hello.length);
    expect(byAction(result.events, 'tls-client-hello')).toEqual([]);
    expect(result.stderr, result.stderr).toMatch(/anomaly \S+ x\d+/);
  });
});

// --- command line -------------------------------------------------------------------------------

// The command line runs from dist/, which `npm test` builds before vitest starts.
describe('sniff command line', () => {
  const cli = (args: string[], input?: Buffer) =>
    spawnSync(process.execPath, [join(repo, 'dist', 'cli', 'main.js'), 'sniff', ...args], {
      cwd: work,
      input,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });

  it('reads a capture from stdin', () => {
    const run = cli(['-', '--protected', PROTECTED, '--no-summary'], readFileSync(STORE));
    expect(run.status).toBe(EXIT_OK);
    const events = run.stdout
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line));
    expect(byAction(events, 'dicom-association')).toHaveLength(3);
  });

  it('reads a truncated capture from stdin', () => {
    const pcap = readFileSync(STORE);
    const run = cli(['-', '--protected', PROTECTED], pcap.subarray(0, pcap.length - 7));
    expect(run.status).toBe(EXIT_INPUT_DAMAGED);
    expect(run.stderr).toMatch(/capture records cut short/);
  });

  for (const value of ['10.0.0.0/33', 'not-a-cidr', ',', '300.1.2.3/8']) {
    it(`--protected ${value} is a usage error`, () => {
      const run = cli([STORE, '--protected', value]);
      expect(run.status).toBe(EXIT_USAGE);
      expect(run.stderr).toMatch(/^tollgate sniff: --protected/m);
      expect(run.stdout).toBe('');
    });
  }
});
