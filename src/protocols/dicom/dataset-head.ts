import type { DicomInstanceAttributes } from '../../engine/types.js';
import type { DatasetEncoding } from './constants.js';

// A walker over the first bytes of a dataset (PS3.5 section 7.1) that reads the leading
// attributes and stops at the first top-level tag past Series Instance UID (0020,000E) or at
// Pixel Data. The caller appends bytes to one bounded head buffer and calls `resume` after each
// append; the walker continues from the last complete element, so no byte is decoded twice.

const ATTRIBUTE_TAGS: ReadonlyMap<number, keyof DicomInstanceAttributes> = new Map([
  [0x00080016, 'sopClassUid'],
  [0x00080018, 'sopInstanceUid'],
  [0x00080050, 'accessionNumber'],
  [0x00080060, 'modality'],
  [0x00100010, 'patientName'],
  [0x00100020, 'patientId'],
  [0x0020000d, 'studyInstanceUid'],
  [0x0020000e, 'seriesInstanceUid'],
]);

const LAST_LEADING_TAG = 0x0020000e;
const PIXEL_DATA = 0x7fe00010;
const ITEM = 0xfffee000;
const ITEM_DELIMITATION = 0xfffee00d;
const SEQUENCE_DELIMITATION = 0xfffee0dd;
const UNDEFINED_LENGTH = 0xffffffff;
/** Longest value kept for one attribute; PN is at most 5 x 64 characters (PS3.5 table 6.2-1). */
const MAX_ATTRIBUTE_VALUE = 324;
/** Undefined-length sequences and items nested deeper than this are not followed. */
const MAX_DEPTH = 16;

/** VRs with a reserved u16 and a u32 length in explicit VR encoding (PS3.5 section 7.1.2). */
const LONG_VRS = new Set([
  'OB',
  'OD',
  'OF',
  'OL',
  'OV',
  'OW',
  'SQ',
  'SV',
  'UC',
  'UN',
  'UR',
  'UT',
  'UV',
]);
const ALL_VRS = new Set([
  ...LONG_VRS,
  ...['AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FL', 'FD', 'IS', 'LO', 'LT', 'PN', 'SH', 'SL'],
  ...['SS', 'ST', 'TM', 'UI', 'UL', 'US'],
]);

export type HeadStatus = 'need-more' | 'complete' | 'invalid';

export class DatasetHeadWalker {
  readonly attributes: DicomInstanceAttributes = {};
  status: HeadStatus = 'need-more';
  /** Why the walk stopped as invalid: the element tag and the value that broke it. */
  problem?: { tag: number; length: number; depth: number };
  private offset = 0;
  private depth = 0;

  constructor(readonly encoding: Exclude<DatasetEncoding, 'deflated'>) {}

  /** Walks the complete elements in `head[0, length)` that were not walked before. */
  resume(head: Buffer, length: number): HeadStatus {
    while (this.status === 'need-more') {
      const step = this.step(head, length);
      if (step === 'need-more') {
        break;
      }
    }
    return this.status;
  }

  private step(head: Buffer, length: number): 'need-more' | 'advanced' {
    const big = this.encoding === 'explicit-be';
    const start = this.offset;
    if (length - start < 8) {
      return 'need-more';
    }
    const group = big ? head.readUInt16BE(start) : head.readUInt16LE(start);
    const element = big ? head.readUInt16BE(start + 2) : head.readUInt16LE(start + 2);
    const tag = ((group << 16) | element) >>> 0;

    if (this.depth === 0 && (tag > LAST_LEADING_TAG || tag === PIXEL_DATA)) {
      this.status = 'complete';
      return 'advanced';
    }

    // Item and delimitation tags have no VR in every transfer syntax (PS3.5 section 7.5).
    let valueStart: number;
    let valueLength: number;
    if (group === 0xfffe || this.encoding === 'implicit-le') {
      valueLength = big ? head.readUInt32BE(start + 4) : head.readUInt32LE(start + 4);
      valueStart = start + 8;
    } else {
      const vr = head.toString('latin1', start + 4, start + 6);
      if (!ALL_VRS.has(vr)) {
        this.fail(tag, 0);
        return 'advanced';
      }
      if (LONG_VRS.has(vr)) {
        if (length - start < 12) {
          return 'need-more';
        }
        valueLength = big ? head.readUInt32BE(start + 8) : head.readUInt32LE(start + 8);
        valueStart = start + 12;
      } else {
        valueLength = big ? head.readUInt16BE(start + 6) : head.readUInt16LE(start + 6);
        valueStart = start + 8;
      }
    }

    if (tag === ITEM_DELIMITATION || tag === SEQUENCE_DELIMITATION) {
      this.depth = Math.max(0, this.depth - 1);
      this.offset = valueStart;
      return 'advanced';
    }
    if (valueLength === UNDEFINED_LENGTH) {
      // A sequence, an item of one, or encapsulated data: its end is a delimitation tag.
      if (this.depth >= MAX_DEPTH) {
        this.fail(tag, valueLength);
        return 'advanced';
      }
      this.depth += 1;
      this.offset = valueStart;
      return 'advanced';
    }
    if (tag === ITEM) {
      // A defined-length item: skip it whole, because nothing inside is a leading attribute.
      return this.skipValue(valueStart, valueLength, length);
    }

    const name = this.depth === 0 ? ATTRIBUTE_TAGS.get(tag) : undefined;
    if (name === undefined) {
      return this.skipValue(valueStart, valueLength, length);
    }
    if (valueLength > MAX_ATTRIBUTE_VALUE) {
      this.fail(tag, valueLength);
      return 'advanced';
    }
    if (length - valueStart < valueLength) {
      return 'need-more';
    }
    const text = head.toString('latin1', valueStart, valueStart + valueLength);
    this.attributes[name] = text.replace(/[\0 ]+$/, '').replace(/^ +/, '');
    this.offset = valueStart + valueLength;
    if (tag === LAST_LEADING_TAG) {
      this.status = 'complete';
    }
    return 'advanced';
  }

  /**
   * Moves past a value the walker does not need. The head buffer may end inside it; the offset
   * then points past the end of the head and the next `resume` reports need-more until the head
   * limit ends the walk.
   */
  private skipValue(
    valueStart: number,
    valueLength: number,
    length: number,
  ): 'advanced' | 'need-more' {
    if (length - valueStart < valueLength) {
      return 'need-more';
    }
    this.offset = valueStart + valueLength;
    return 'advanced';
  }

  private fail(tag: number, length: number): void {
    this.status = 'invalid';
    this.problem = { tag, length, depth: this.depth };
  }
}

/**
 * Guesses the encoding of a dataset whose transfer syntax is unknown (mid-stream pickup):
 * explicit VR little endian when bytes 4-5 of the first element are a VR, otherwise implicit.
 * In implicit VR those bytes are the low half of a length, and two VR letters there would
 * make a length of at least 0x4141 bytes, far longer than any leading attribute.
 */
export function guessEncoding(
  head: Buffer,
  length: number,
): 'implicit-le' | 'explicit-le' | undefined {
  if (length < 6) {
    return undefined;
  }
  return ALL_VRS.has(head.toString('latin1', 4, 6)) ? 'explicit-le' : 'implicit-le';
}
