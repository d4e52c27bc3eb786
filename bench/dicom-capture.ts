// Writes a synthetic pcap of DICOM C-STORE traffic in 1514-byte Ethernet frames: a PACS
// (inside) pushing instances to a remote AE over several associations, with the remote's
// acknowledgements and C-STORE responses. Used by the sniff benchmark; every byte is
// generated here, so anyone can regenerate the file.

import { PcapWriter, TcpConnection } from './pcap-writer.js';

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

/** Writes the capture and returns what it contains. */
export async function writeDicomCapture(
  path: string,
  spec: CaptureSpec,
): Promise<{ bytes: number; packets: number; instances: number; associations: number }> {
  const out = new PcapWriter(path, {
    clientIp: INSIDE_IP,
    serverIp: REMOTE_IP,
    serverPort: REMOTE_PORT,
  });
  const pixels = Buffer.alloc(spec.pixelBytes, 0x5a);
  const pixelHeader = Buffer.alloc(8);
  pixelHeader.writeUInt16LE(0x7fe0, 0);
  pixelHeader.writeUInt16LE(0x0010, 2);
  pixelHeader.writeUInt32LE(pixels.length, 4);

  let instances = 0;
  let associations = 0;
  while (out.written < spec.targetBytes) {
    associations++;
    const connection = new TcpConnection(out, 40_000 + (associations % 20_000));
    connection.sendSegments('client', associate(1));
    connection.send('server', associate(2));

    for (let i = 0; i < spec.instancesPerAssociation && out.written < spec.targetBytes; i++) {
      instances++;
      const uid = `1.2.826.0.1.3680043.10.999.8.${instances}`;
      const dataset = Buffer.concat([datasetHead(instances, uid), pixelHeader, pixels]);
      for (const part of message(commandSet(uid, i + 1), true))
        connection.sendSegments('client', part);
      for (const part of message(dataset, false)) connection.sendSegments('client', part);
      for (const part of message(responseSet(uid, i + 1), true)) connection.send('server', part);
      if (out.pending > 4 * 1024 * 1024) await out.flush();
    }

    connection.sendSegments('client', pdu(0x05, Buffer.alloc(4)));
    connection.send('server', pdu(0x06, Buffer.alloc(4)));
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
