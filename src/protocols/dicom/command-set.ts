import { readText } from './associate.js';

/** The DIMSE command elements tollgate reads (group 0000, PS3.7 annex E.1). */
export interface CommandSet {
  commandField?: number;
  messageId?: number;
  messageIdBeingRespondedTo?: number;
  affectedSopClassUid?: string;
  affectedSopInstanceUid?: string;
  status?: number;
  moveDestination?: string;
  commandDataSetType?: number;
}

export type CommandSetResult =
  | { ok: true; command: CommandSet }
  | { ok: false; tag: number; length: number; available: number };

const Tag = {
  AffectedSopClassUid: 0x00000002,
  CommandField: 0x00000100,
  MessageId: 0x00000110,
  MessageIdBeingRespondedTo: 0x00000120,
  MoveDestination: 0x00000600,
  CommandDataSetType: 0x00000800,
  Status: 0x00000900,
  AffectedSopInstanceUid: 0x00001000,
} as const;

/**
 * Decodes a complete command set. PS3.7 section 6.3.1: command sets are always implicit VR
 * little endian, so each element is group u16 | element u16 | length u32 | value.
 * Fails on the first element whose length runs past the command set.
 */
export function decodeCommandSet(buffer: Buffer): CommandSetResult {
  const command: CommandSet = {};
  let offset = 0;
  while (offset < buffer.length) {
    const available = buffer.length - offset - 8;
    if (available < 0) {
      return { ok: false, tag: 0, length: 8, available: buffer.length - offset };
    }
    const tag = ((buffer.readUInt16LE(offset) << 16) | buffer.readUInt16LE(offset + 2)) >>> 0;
    const length = buffer.readUInt32LE(offset + 4);
    if (length > available) {
      return { ok: false, tag, length, available };
    }
    const start = offset + 8;
    const end = start + length;
    readElement(command, buffer, tag, start, end);
    offset = end;
  }
  return { ok: true, command };
}

function readElement(command: CommandSet, buffer: Buffer, tag: number, start: number, end: number) {
  const u16 = end - start === 2 ? buffer.readUInt16LE(start) : undefined;
  switch (tag) {
    case Tag.AffectedSopClassUid:
      command.affectedSopClassUid = readText(buffer, start, end);
      break;
    case Tag.CommandField:
      command.commandField = u16;
      break;
    case Tag.MessageId:
      command.messageId = u16;
      break;
    case Tag.MessageIdBeingRespondedTo:
      command.messageIdBeingRespondedTo = u16;
      break;
    case Tag.MoveDestination:
      command.moveDestination = readText(buffer, start, end);
      break;
    case Tag.CommandDataSetType:
      command.commandDataSetType = u16;
      break;
    case Tag.Status:
      command.status = u16;
      break;
    case Tag.AffectedSopInstanceUid:
      command.affectedSopInstanceUid = readText(buffer, start, end);
      break;
    default:
      break;
  }
}
