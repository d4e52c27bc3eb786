// Wire constants from PS3.8 (Upper Layer), PS3.7 (DIMSE) and PS3.5 (transfer syntaxes).

/** PDU types, PS3.8 section 9.3.1. */
export const PduType = {
  AssociateRq: 0x01,
  AssociateAc: 0x02,
  AssociateRj: 0x03,
  PDataTf: 0x04,
  ReleaseRq: 0x05,
  ReleaseRp: 0x06,
  Abort: 0x07,
} as const;

/** Every PDU starts with type (1), reserved (1) and a big-endian length (4). */
export const PDU_HEADER_LENGTH = 6;
/** A PDV item starts with a big-endian length (4), presentation context id (1) and control header (1). */
export const PDV_HEADER_LENGTH = 6;

/** Message control header bits of a PDV, PS3.8 annex E.2. */
export const PDV_COMMAND = 0x01;
export const PDV_LAST_FRAGMENT = 0x02;

/** Command Field values, PS3.7 annex E.1. */
export const COMMAND_FIELD_NAMES: ReadonlyMap<number, string> = new Map([
  [0x0001, 'C-STORE-RQ'],
  [0x8001, 'C-STORE-RSP'],
  [0x0010, 'C-GET-RQ'],
  [0x8010, 'C-GET-RSP'],
  [0x0020, 'C-FIND-RQ'],
  [0x8020, 'C-FIND-RSP'],
  [0x0021, 'C-MOVE-RQ'],
  [0x8021, 'C-MOVE-RSP'],
  [0x0030, 'C-ECHO-RQ'],
  [0x8030, 'C-ECHO-RSP'],
  [0x0fff, 'C-CANCEL-RQ'],
]);

export const COMMAND_C_STORE_RQ = 0x0001;
export const COMMAND_C_MOVE_RQ = 0x0021;

/** Command Data Set Type value meaning "no dataset follows", PS3.7 section 9.3. */
export const NO_DATASET = 0x0101;

/** Status codes that are not failures: Success and the two Pending codes, PS3.7 annex C. */
export const STATUS_SUCCESS = 0x0000;
export const STATUS_PENDING = 0xff00;
export const STATUS_PENDING_WARNING = 0xff01;

export const TransferSyntax = {
  ImplicitLittle: '1.2.840.10008.1.2',
  ExplicitLittle: '1.2.840.10008.1.2.1',
  DeflatedExplicitLittle: '1.2.840.10008.1.2.1.99',
  ExplicitBig: '1.2.840.10008.1.2.2',
} as const;

/** How a dataset is encoded on the wire, as far as reading its leading elements goes. */
export type DatasetEncoding = 'implicit-le' | 'explicit-le' | 'explicit-be' | 'deflated';

/**
 * Maps a transfer syntax UID to the encoding of its dataset. Encapsulated (compressed pixel data)
 * syntaxes and unknown ones use explicit VR little endian for everything except Pixel Data.
 */
export function encodingOf(transferSyntaxUid: string): DatasetEncoding {
  switch (transferSyntaxUid) {
    case TransferSyntax.ImplicitLittle:
      return 'implicit-le';
    case TransferSyntax.ExplicitBig:
      return 'explicit-be';
    case TransferSyntax.DeflatedExplicitLittle:
      return 'deflated';
    default:
      return 'explicit-le';
  }
}
