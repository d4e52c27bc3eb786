// Writes a synthetic pcap of DICOM C-STORE traffic in 1514-byte Ethernet frames: a PACS
// (inside) pushing instances to a remote AE over several associations, with the remote's
// acknowledgements and C-STORE responses. Used by the sniff benchmark; every byte is
// generated here, so anyone can regenerate the file.

import { once } from 'node:events';
import { createWriteStream } from 'node:fs';

const MSS = 1460;
const PDU_MAX = 16_384;
const INSIDE_IP = [10, 20, 0, 10];
const REMOTE_IP = [203, 0, 113, 50];
const REMOTE_PORT = 104;
const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
const IMPLICIT_LE = '1.2.840.10008.1.2';

export interface CaptureSpec {
  /** Stop after this many capture bytes (approximately). */
  targetBytes: number;
  /** Pixel data bytes per instance. */
  pixelBytes: number;
  instancesPerAssociation: number;
}

/** Encodes one implicit VR little endian element; odd-length string values get padded. */
function element(group: number, elementId: number, value: Buffer): Buffer {
  const padded = value.length % 2 === 1 ? Buffer.concat([value, Buffer.from([0])]) : value;
  const header = Buffer.alloc(8);
  header.writeUInt16LE(group, 0);
  header.writeUInt16LE(elementId, 2);
  header.writeUInt32LE(padded.length, 4);
  return Buffer.concat([header, padded]);
}

function text(value: string): Buffer {
  return Buffer.from(value, 'latin1');
}

function u16le(value: number): Buffer {
  const buffer = Buffer.alloc(2);
  buffer.writeUInt16LE(value);
  return buffer;
}

export function commandSet(sopInstanceUid: string, messageId: number): Buffer {
  const body = Buffer.concat([
    element(0x0000, 0x0002, text(CT_IMAGE_STORAGE)),
    element(0x0000, 0x0100, u16le(0x0001)),
    element(0x0000, 0x0110, u16le(messageId)),
    element(0x0000, 0x0700, u16le(0)),
    element(0x0000, 0x0800, u16le(0x0000)),
    element(0x0000, 0x1000, text(sopInstanceUid)),
  ]);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(body.length);
  return Buffer.concat([element(0x0000, 0x0000, length), body]);
}

function responseSet(sopInstanceUid: string, messageId: number): Buffer {
  return Buffer.concat([
    element(0x0000, 0x0002, text(CT_IMAGE_STORAGE)),
    element(0x0000, 0x0100, u16le(0x8001)),
    element(0x0000, 0x0120, u16le(messageId)),
    element(0x0000, 0x0800, u16le(0x0101)),
    element(0x0000, 0x0900, u16le(0x0000)),
    element(0x0000, 0x1000, text(sopInstanceUid)),
  ]);
}

export function datasetHead(instance: number, sopInstanceUid: string): Buffer {
  const patient = instance % 50;
  return Buffer.concat([
    element(0x0008, 0x0016, text(CT_IMAGE_STORAGE)),
    element(0x0008, 0x0018, text(sopInstanceUid)),
    element(0x0008, 0x0050, text(`ACC${patient}`)),
    element(0x0008, 0x0060, text('CT')),
    element(0x0010, 0x0010, text(`TEST^PATIENT${patient}`)),
    element(0x0010, 0x0020, text(`FAKE${String(patient).padStart(4, '0')}`)),
    element(0x0020, 0x000d, text(`1.2.826.0.1.3680043.10.999.7.${patient}`)),
    element(0x0020, 0x000e, text(`1.2.826.0.1.3680043.10.999.7.${patient}.1`)),
  ]);
}

export function pdu(type: number, body: Buffer): Buffer {
  const header = Buffer.alloc(6);
  header.writeUInt8(type, 0);
  header.writeUInt32BE(body.length, 2);
  return Buffer.concat([header, body]);
}

function pdv(contextId: number, control: number, data: Buffer): Buffer {
  const header = Buffer.alloc(6);
  header.writeUInt32BE(data.length + 2, 0);
  header.writeUInt8(contextId, 4);
  header.writeUInt8(control, 5);
  return Buffer.concat([header, data]);
}

function item(type: number, body: Buffer): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt8(type, 0);
  header.writeUInt16BE(body.length, 2);
  return Buffer.concat([header, body]);
}

function aeTitle(name: string): Buffer {
  return Buffer.from(name.padEnd(16, ' '), 'latin1');
}

export function associate(type: 1 | 2): Buffer {
  const maxLength = Buffer.alloc(4);
  maxLength.writeUInt32BE(PDU_MAX);
  const context =
    type === 1
      ? item(
          0x20,
          Buffer.concat([
            Buffer.from([1, 0, 0, 0]),
            item(0x30, text(CT_IMAGE_STORAGE)),
            item(0x40, text(IMPLICIT_LE)),
          ]),
        )
      : item(0x21, Buffer.concat([Buffer.from([1, 0, 0, 0]), item(0x40, text(IMPLICIT_LE))]));
  const body = Buffer.concat([
    Buffer.from([0x00, 0x01, 0x00, 0x00]),
    aeTitle('VENDOR_AE'),
    aeTitle('PACS'),
    Buffer.alloc(32),
    item(0x10, text('1.2.840.10008.3.1.1.1')),
    context,
    item(0x50, item(0x51, maxLength)),
  ]);
  return pdu(type, body);
}

/** P-DATA-TF PDUs carrying one message (command or dataset), fragmented to the max PDU size. */
export function message(data: Buffer, command: boolean): Buffer[] {
  const pdus: Buffer[] = [];
  const fragment = PDU_MAX - 6;
  for (let offset = 0; offset < data.length || offset === 0; offset += fragment) {
    const last = offset + fragment >= data.length;
    const control = (command ? 1 : 0) | (last ? 2 : 0);
    pdus.push(pdu(0x04, pdv(1, control, data.subarray(offset, offset + fragment))));
    if (last) break;
  }
  return pdus;
}

class PcapWriter {
  private readonly stream;
  private buffers: Buffer[] = [];
  private pendingBytes = 0;
  written = 0;
  packets = 0;
  ts = Date.UTC(2026, 10, 3, 2, 0, 0) * 1000;

  constructor(path: string) {
    this.stream = createWriteStream(path);
    const header = Buffer.alloc(24);
    header.writeUInt32LE(0xa1b2c3d4, 0);
    header.writeUInt16LE(2, 4);
    header.writeUInt16LE(4, 6);
    header.writeUInt32LE(65_535, 16);
    header.writeUInt32LE(1, 20);
    this.push(header);
  }

  frame(
    fromInside: boolean,
    srcPort: number,
    seq: number,
    ack: number,
    flags: number,
    payload: Buffer,
  ): void {
    const ipLength = 20 + 20 + payload.length;
    const frame = Buffer.alloc(14 + ipLength);
    frame.writeUInt16BE(0x0800, 12);
    frame.writeUInt8(0x45, 14);
    frame.writeUInt16BE(ipLength, 16);
    frame.writeUInt8(64, 22);
    frame.writeUInt8(6, 23);
    const [src, dst] = fromInside ? [INSIDE_IP, REMOTE_IP] : [REMOTE_IP, INSIDE_IP];
    frame.set(src, 26);
    frame.set(dst, 30);
    frame.writeUInt16BE(fromInside ? srcPort : REMOTE_PORT, 34);
    frame.writeUInt16BE(fromInside ? REMOTE_PORT : srcPort, 36);
    frame.writeUInt32BE(seq >>> 0, 38);
    frame.writeUInt32BE(ack >>> 0, 42);
    frame.writeUInt8(0x50, 46);
    frame.writeUInt8(flags, 47);
    frame.writeUInt16BE(65_535, 48);
    payload.copy(frame, 54);

    this.ts += 10;
    const record = Buffer.alloc(16);
    record.writeUInt32LE(Math.floor(this.ts / 1e6), 0);
    record.writeUInt32LE(this.ts % 1e6, 4);
    record.writeUInt32LE(frame.length, 8);
    record.writeUInt32LE(frame.length, 12);
    this.push(record);
    this.push(frame);
    this.packets++;
  }

  private push(buffer: Buffer): void {
    this.buffers.push(buffer);
    this.pendingBytes += buffer.length;
    this.written += buffer.length;
  }

  async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const chunk = Buffer.concat(this.buffers);
    this.buffers = [];
    this.pendingBytes = 0;
    if (!this.stream.write(chunk)) await once(this.stream, 'drain');
  }

  get pending(): number {
    return this.pendingBytes;
  }

  async close(): Promise<void> {
    await this.flush();
    this.stream.end();
    await once(this.stream, 'finish');
  }
}

/** One TCP connection's sequence state, for writing both directions. */
class Connection {
  insideSeq = 1000;
  remoteSeq = 5000;
  private unacked = 0;

  constructor(
    private readonly out: PcapWriter,
    private readonly port: number,
  ) {
    out.frame(true, port, this.insideSeq - 1, 0, 0x02, Buffer.alloc(0));
    out.frame(false, port, this.remoteSeq - 1, this.insideSeq, 0x12, Buffer.alloc(0));
    out.frame(true, port, this.insideSeq, this.remoteSeq, 0x10, Buffer.alloc(0));
  }

  /** Sends `data` from the inside in MSS-sized segments; the remote acknowledges every second one. */
  insideSends(data: Buffer): void {
    for (let offset = 0; offset < data.length; offset += MSS) {
      const segment = data.subarray(offset, offset + MSS);
      this.out.frame(true, this.port, this.insideSeq, this.remoteSeq, 0x18, segment);
      this.insideSeq += segment.length;
      if (++this.unacked === 2) {
        this.unacked = 0;
        this.out.frame(false, this.port, this.remoteSeq, this.insideSeq, 0x10, Buffer.alloc(0));
      }
    }
  }

  remoteSends(data: Buffer): void {
    this.out.frame(false, this.port, this.remoteSeq, this.insideSeq, 0x18, data);
    this.remoteSeq += data.length;
  }

  close(): void {
    this.out.frame(true, this.port, this.insideSeq, this.remoteSeq, 0x11, Buffer.alloc(0));
    this.out.frame(false, this.port, this.remoteSeq, this.insideSeq + 1, 0x11, Buffer.alloc(0));
    this.out.frame(true, this.port, this.insideSeq + 1, this.remoteSeq + 1, 0x10, Buffer.alloc(0));
  }
}

/** Writes the capture and returns what it contains. */
export async function writeDicomCapture(
  path: string,
  spec: CaptureSpec,
): Promise<{ bytes: number; packets: number; instances: number; associations: number }> {
  const out = new PcapWriter(path);
  const pixels = Buffer.alloc(spec.pixelBytes, 0x5a);
  const pixelHeader = Buffer.alloc(8);
  pixelHeader.writeUInt16LE(0x7fe0, 0);
  pixelHeader.writeUInt16LE(0x0010, 2);
  pixelHeader.writeUInt32LE(pixels.length, 4);

  let instances = 0;
  let associations = 0;
  while (out.written < spec.targetBytes) {
    associations++;
    const connection = new Connection(out, 40_000 + (associations % 20_000));
    connection.insideSends(associate(1));
    connection.remoteSends(associate(2));

    for (let i = 0; i < spec.instancesPerAssociation && out.written < spec.targetBytes; i++) {
      instances++;
      const uid = `1.2.826.0.1.3680043.10.999.8.${instances}`;
      const dataset = Buffer.concat([datasetHead(instances, uid), pixelHeader, pixels]);
      for (const part of message(commandSet(uid, i + 1), true)) connection.insideSends(part);
      for (const part of message(dataset, false)) connection.insideSends(part);
      for (const part of message(responseSet(uid, i + 1), true)) connection.remoteSends(part);
      if (out.pending > 4 * 1024 * 1024) await out.flush();
    }

    connection.insideSends(pdu(0x05, Buffer.alloc(4)));
    connection.remoteSends(pdu(0x06, Buffer.alloc(4)));
    connection.close();
  }

  await out.close();
  return { bytes: out.written, packets: out.packets, instances, associations };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [path, megabytes] = process.argv.slice(2);
  if (path === undefined) {
    process.stderr.write('usage: dicom-capture.js OUTPUT.pcap [MEGABYTES]\n');
    process.exit(2);
  }
  const result = await writeDicomCapture(path, {
    targetBytes: Number(megabytes ?? 1100) * 1e6,
    pixelBytes: 512 * 1024,
    instancesPerAssociation: 100,
  });
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
