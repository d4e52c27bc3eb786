// Decoders for the association PDU bodies (everything after the 6-byte PDU header).
// They are pure: given one complete, length-checked body they return what they could read and
// the name of the first problem, and never read past the body or the item that contains them.

export interface PresentationContextItem {
  id: number;
  /** Only in A-ASSOCIATE-RQ. */
  abstractSyntax?: string;
  transferSyntaxes: string[];
  /** Only in A-ASSOCIATE-AC: 0 acceptance, 1..4 rejection reasons (PS3.8 section 9.3.3.2). */
  result?: number;
}

export interface AssociateBody {
  protocolVersion: number;
  calledAeTitle: string;
  callingAeTitle: string;
  applicationContextName?: string;
  presentationContexts: PresentationContextItem[];
  maxPduLength?: number;
  implementationClassUid?: string;
  implementationVersionName?: string;
  /** Set when an item's length ran past its enclosing record; items before it are kept. */
  problem?: { item: number; length: number; available: number };
}

const ItemType = {
  ApplicationContext: 0x10,
  PresentationContextRq: 0x20,
  PresentationContextAc: 0x21,
  AbstractSyntax: 0x30,
  TransferSyntax: 0x40,
  UserInformation: 0x50,
  MaxLength: 0x51,
  ImplementationClassUid: 0x52,
  ImplementationVersionName: 0x55,
} as const;

/** Fixed part of A-ASSOCIATE-RQ/AC before the variable items: version, reserved, AE titles, reserved. */
export const ASSOCIATE_FIXED_LENGTH = 2 + 2 + 16 + 16 + 32;

/** Decodes an AE title or UID field: ASCII with trailing spaces or NUL padding removed. */
export function readText(buffer: Buffer, start: number, end: number): string {
  return buffer
    .toString('latin1', start, end)
    .replace(/[\0 ]+$/, '')
    .replace(/^ +/, '');
}

interface Item {
  type: number;
  start: number;
  end: number;
}

/**
 * Splits `buffer[start, end)` into items of type (1), reserved (1), big-endian length (2) and
 * value. Returns the items and, when one claims more bytes than remain, where it failed.
 */
function splitItems(
  buffer: Buffer,
  start: number,
  end: number,
): { items: Item[]; problem?: AssociateBody['problem'] } {
  const items: Item[] = [];
  let offset = start;
  while (offset < end) {
    if (end - offset < 4) {
      return { items, problem: { item: buffer[offset] ?? 0, length: 4, available: end - offset } };
    }
    const type = buffer.readUInt8(offset);
    const length = buffer.readUInt16BE(offset + 2);
    const valueStart = offset + 4;
    if (length > end - valueStart) {
      return { items, problem: { item: type, length, available: end - valueStart } };
    }
    items.push({ type, start: valueStart, end: valueStart + length });
    offset = valueStart + length;
  }
  return { items };
}

/**
 * A-ASSOCIATE-RQ (PS3.8 section 9.3.2) and A-ASSOCIATE-AC (section 9.3.3):
 *   protocol-version u16 | reserved u16 | called-AE 16 | calling-AE 16 | reserved 32 | items...
 * The AC repeats the AE title fields (reserved, but sent back unchanged by practice).
 * Returns undefined when the body is shorter than the fixed part.
 */
export function decodeAssociateBody(body: Buffer): AssociateBody | undefined {
  if (body.length < ASSOCIATE_FIXED_LENGTH) {
    return undefined;
  }
  const result: AssociateBody = {
    protocolVersion: body.readUInt16BE(0),
    calledAeTitle: readText(body, 4, 20),
    callingAeTitle: readText(body, 20, 36),
    presentationContexts: [],
  };

  const { items, problem } = splitItems(body, ASSOCIATE_FIXED_LENGTH, body.length);
  result.problem = problem;
  for (const item of items) {
    switch (item.type) {
      case ItemType.ApplicationContext:
        result.applicationContextName = readText(body, item.start, item.end);
        break;
      case ItemType.PresentationContextRq:
      case ItemType.PresentationContextAc: {
        const context = decodePresentationContext(body, item);
        if (context.problem) {
          result.problem ??= context.problem;
        }
        if (context.item) {
          result.presentationContexts.push(context.item);
        }
        break;
      }
      case ItemType.UserInformation: {
        const problemInUser = decodeUserInformation(body, item, result);
        result.problem ??= problemInUser;
        break;
      }
      default:
        // Unknown items are skipped by their length (PS3.8 section 9.3.1).
        break;
    }
  }
  if (result.problem === undefined) {
    delete result.problem;
  }
  return result;
}

/**
 * Presentation context item, PS3.8 sections 9.3.2.2 and 9.3.3.2:
 *   context-id u8 | reserved u8 | result u8 (AC) or reserved (RQ) | reserved u8 | sub-items...
 * Sub-items are one abstract syntax (0x30, RQ only) and transfer syntaxes (0x40).
 */
function decodePresentationContext(
  body: Buffer,
  item: Item,
): { item?: PresentationContextItem; problem?: AssociateBody['problem'] } {
  if (item.end - item.start < 4) {
    return { problem: { item: item.type, length: 4, available: item.end - item.start } };
  }
  const context: PresentationContextItem = {
    id: body.readUInt8(item.start),
    transferSyntaxes: [],
  };
  if (item.type === ItemType.PresentationContextAc) {
    context.result = body.readUInt8(item.start + 2);
  }
  const { items, problem } = splitItems(body, item.start + 4, item.end);
  for (const sub of items) {
    if (sub.type === ItemType.AbstractSyntax) {
      context.abstractSyntax = readText(body, sub.start, sub.end);
    } else if (sub.type === ItemType.TransferSyntax) {
      context.transferSyntaxes.push(readText(body, sub.start, sub.end));
    }
  }
  return problem ? { item: context, problem } : { item: context };
}

/**
 * User information item, PS3.8 annex D.1 and PS3.7 annex D.3.3.2:
 * sub-items 0x51 maximum length (u32), 0x52 implementation class UID, 0x55 version name.
 */
function decodeUserInformation(
  body: Buffer,
  item: Item,
  into: AssociateBody,
): AssociateBody['problem'] {
  const { items, problem } = splitItems(body, item.start, item.end);
  for (const sub of items) {
    if (sub.type === ItemType.MaxLength && sub.end - sub.start === 4) {
      into.maxPduLength = body.readUInt32BE(sub.start);
    } else if (sub.type === ItemType.ImplementationClassUid) {
      into.implementationClassUid = readText(body, sub.start, sub.end);
    } else if (sub.type === ItemType.ImplementationVersionName) {
      into.implementationVersionName = readText(body, sub.start, sub.end);
    }
  }
  return problem;
}

/** A-ASSOCIATE-RJ body, PS3.8 section 9.3.4: reserved u8 | result u8 | source u8 | reason u8. */
export function decodeRejectBody(
  body: Buffer,
): { result: number; source: number; reason: number } | undefined {
  if (body.length < 4) {
    return undefined;
  }
  return { result: body.readUInt8(1), source: body.readUInt8(2), reason: body.readUInt8(3) };
}

/** A-ABORT body, PS3.8 section 9.3.8: reserved u8 | reserved u8 | source u8 | reason u8. */
export function decodeAbortBody(body: Buffer): { source: number; reason: number } | undefined {
  if (body.length < 4) {
    return undefined;
  }
  return { source: body.readUInt8(2), reason: body.readUInt8(3) };
}
