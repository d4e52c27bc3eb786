// Builders for DICOM wire records used by the tests (PS3.8 section 9.3, PS3.5 section 7.1).

/** Parses annotated hex: pairs of hex digits, with `#` comments to the end of the line. */
export function hex(text: string): Buffer {
  const digits = text.replace(/#.*$/gm, '').replace(/\s+/g, '');
  return Buffer.from(digits, 'hex');
}

function u16be(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(value);
  return b;
}
function u32be(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value);
  return b;
}
function padded(text: string): Buffer {
  const value = Buffer.from(text, 'latin1');
  return value.length % 2 === 0 ? value : Buffer.concat([value, Buffer.from([0])]);
}

export function pdu(type: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([type, 0]), u32be(body.length), body]);
}

function item(type: number, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from([type, 0]), u16be(value.length), value]);
}

function aeTitle(title: string): Buffer {
  return Buffer.from(title.padEnd(16, ' '), 'latin1');
}

export interface ContextSpec {
  id: number;
  abstractSyntax: string;
  transferSyntaxes: string[];
}

const APPLICATION_CONTEXT = '1.2.840.10008.3.1.1.1';

export function associateRq(
  calling: string,
  called: string,
  contexts: ContextSpec[],
  maxPdu = 16384,
): Buffer {
  const items = [
    item(0x10, Buffer.from(APPLICATION_CONTEXT)),
    ...contexts.map((context) =>
      item(
        0x20,
        Buffer.concat([
          Buffer.from([context.id, 0, 0, 0]),
          item(0x30, Buffer.from(context.abstractSyntax)),
          ...context.transferSyntaxes.map((syntax) => item(0x40, Buffer.from(syntax))),
        ]),
      ),
    ),
    item(0x50, Buffer.concat([item(0x51, u32be(maxPdu)), item(0x52, Buffer.from('1.2.3.4'))])),
  ];
  const fixed = Buffer.concat([
    u16be(1),
    u16be(0),
    aeTitle(called),
    aeTitle(calling),
    Buffer.alloc(32),
  ]);
  return pdu(0x01, Buffer.concat([fixed, ...items]));
}

export function associateAc(
  calling: string,
  called: string,
  answers: Array<{ id: number; result: number; transferSyntax: string }>,
  maxPdu = 16384,
): Buffer {
  const items = [
    item(0x10, Buffer.from(APPLICATION_CONTEXT)),
    ...answers.map((answer) =>
      item(
        0x21,
        Buffer.concat([
          Buffer.from([answer.id, 0, answer.result, 0]),
          item(0x40, Buffer.from(answer.transferSyntax)),
        ]),
      ),
    ),
    item(0x50, item(0x51, u32be(maxPdu))),
  ];
  const fixed = Buffer.concat([
    u16be(1),
    u16be(0),
    aeTitle(called),
    aeTitle(calling),
    Buffer.alloc(32),
  ]);
  return pdu(0x02, Buffer.concat([fixed, ...items]));
}

export const releaseRq = (): Buffer => pdu(0x05, Buffer.alloc(4));
export const releaseRp = (): Buffer => pdu(0x06, Buffer.alloc(4));
export const abort = (source: number, reason: number): Buffer =>
  pdu(0x07, Buffer.from([0, 0, source, reason]));
export const reject = (result: number, source: number, reason: number): Buffer =>
  pdu(0x03, Buffer.from([0, result, source, reason]));

export interface Pdv {
  contextId: number;
  controlHeader: number;
  value: Buffer;
}

export function pdata(...pdvs: Pdv[]): Buffer {
  return pdu(
    0x04,
    Buffer.concat(
      pdvs.map((pdv) =>
        Buffer.concat([
          u32be(pdv.value.length + 2),
          Buffer.from([pdv.contextId, pdv.controlHeader]),
          pdv.value,
        ]),
      ),
    ),
  );
}

/** An implicit VR little endian element; strings are padded to even length. */
export function implicitElement(tag: number, value: Buffer | string | number): Buffer {
  const bytes =
    typeof value === 'number'
      ? Buffer.from([value & 0xff, value >> 8])
      : typeof value === 'string'
        ? padded(value)
        : value;
  const header = Buffer.alloc(8);
  header.writeUInt16LE(tag >>> 16, 0);
  header.writeUInt16LE(tag & 0xffff, 2);
  header.writeUInt32LE(bytes.length, 4);
  return Buffer.concat([header, bytes]);
}

/** An explicit VR element with a short (16-bit) length, little or big endian. */
export function explicitElement(tag: number, vr: string, value: string, big = false): Buffer {
  const bytes = padded(value);
  const header = Buffer.alloc(8);
  if (big) {
    header.writeUInt16BE(tag >>> 16, 0);
    header.writeUInt16BE(tag & 0xffff, 2);
    header.write(vr, 4, 'latin1');
    header.writeUInt16BE(bytes.length, 6);
  } else {
    header.writeUInt16LE(tag >>> 16, 0);
    header.writeUInt16LE(tag & 0xffff, 2);
    header.write(vr, 4, 'latin1');
    header.writeUInt16LE(bytes.length, 6);
  }
  return Buffer.concat([header, bytes]);
}

/** A command set (implicit VR LE) with its Command Group Length element first. */
export function commandSet(fields: {
  commandField: number;
  messageId?: number;
  respondedTo?: number;
  sopClass?: string;
  sopInstance?: string;
  status?: number;
  moveDestination?: string;
  hasDataset: boolean;
}): Buffer {
  const elements = [
    fields.sopClass === undefined ? undefined : implicitElement(0x00000002, fields.sopClass),
    implicitElement(0x00000100, fields.commandField),
    fields.messageId === undefined ? undefined : implicitElement(0x00000110, fields.messageId),
    fields.respondedTo === undefined ? undefined : implicitElement(0x00000120, fields.respondedTo),
    fields.moveDestination === undefined
      ? undefined
      : implicitElement(0x00000600, fields.moveDestination.padEnd(16, ' ')),
    implicitElement(0x00000800, fields.hasDataset ? 0x0000 : 0x0101),
    fields.status === undefined ? undefined : implicitElement(0x00000900, fields.status),
    fields.sopInstance === undefined ? undefined : implicitElement(0x00001000, fields.sopInstance),
  ].filter((element): element is Buffer => element !== undefined);
  const body = Buffer.concat(elements);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(body.length);
  return Buffer.concat([implicitElement(0x00000000, length), body]);
}

export const CT = '1.2.840.10008.5.1.4.1.1.2';
export const MOVE_STUDY_ROOT = '1.2.840.10008.5.1.4.1.2.2.2';
export const IMPLICIT = '1.2.840.10008.1.2';
export const EXPLICIT = '1.2.840.10008.1.2.1';
export const EXPLICIT_BIG = '1.2.840.10008.1.2.2';
export const DEFLATED = '1.2.840.10008.1.2.1.99';

/** The leading attributes of a small CT instance, implicit VR LE, followed by Rows and Pixel Data. */
export function implicitDataset(sopInstance: string, pixelBytes = 64): Buffer {
  return Buffer.concat([
    implicitElement(0x00080016, CT),
    implicitElement(0x00080018, sopInstance),
    implicitElement(0x00080060, 'CT'),
    implicitElement(0x00100010, 'TEST^ALICE'),
    implicitElement(0x00100020, 'FAKE0001'),
    implicitElement(0x0020000d, '1.2.826.0.1.3680043.10.999.1.1'),
    implicitElement(0x0020000e, '1.2.826.0.1.3680043.10.999.1.1.1'),
    implicitElement(0x00280010, 4),
    implicitElement(0x7fe00010, Buffer.alloc(pixelBytes, 0x5a)),
  ]);
}

/** The same attributes in explicit VR, little or big endian. */
export function explicitDataset(sopInstance: string, big = false): Buffer {
  return Buffer.concat([
    explicitElement(0x00080016, 'UI', CT, big),
    explicitElement(0x00080018, 'UI', sopInstance, big),
    explicitElement(0x00080060, 'CS', 'MR', big),
    explicitElement(0x00100010, 'PN', 'TEST^BOB', big),
    explicitElement(0x00100020, 'LO', 'FAKE0002', big),
    explicitElement(0x0020000d, 'UI', '1.2.826.0.1.3680043.10.999.1.2', big),
    explicitElement(0x0020000e, 'UI', '1.2.826.0.1.3680043.10.999.1.2.1', big),
    explicitElement(0x00280010, 'US', 'ab', big),
  ]);
}

/** Splits a message value into PDVs of at most `size` bytes with the right control headers. */
export function fragments(contextId: number, command: boolean, value: Buffer, size: number): Pdv[] {
  const out: Pdv[] = [];
  for (let start = 0; start < value.length || out.length === 0; start += size) {
    const last = start + size >= value.length;
    out.push({
      contextId,
      controlHeader: (command ? 1 : 0) | (last ? 2 : 0),
      value: value.subarray(start, start + size),
    });
  }
  return out;
}
