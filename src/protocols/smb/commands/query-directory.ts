// MS-SMB2 2.2.33 QUERY_DIRECTORY request and 2.2.34 response.
//
// Request (offsets from the body): 8 FileId (16). Response: StructureSize (9),
// OutputBufferOffset (2, from the header), OutputBufferLength (4), then the entries, each
// starting with NextEntryOffset (4); 0 marks the last entry (MS-FSCC 2.4).
import { SMB2_HEADER_LENGTH } from '../header.js';
import type { DataRange } from './read.js';
import { beyondCommand, type DecodeFailure } from './result.js';

export const QUERY_DIRECTORY_RESPONSE_FIXED_LENGTH = 8;

export function decodeQueryDirectoryRequest(command: Buffer): string | DecodeFailure {
  const body = SMB2_HEADER_LENGTH;
  const fixedEnd = body + 24;
  if (fixedEnd > command.length) return beyondCommand('queryDirectory', fixedEnd, command.length);
  return command.toString('hex', body + 8, body + 24);
}

export function decodeQueryDirectoryResponse(
  head: Buffer,
  commandLength: number,
): DataRange | DecodeFailure {
  const body = SMB2_HEADER_LENGTH;
  const fixedEnd = body + QUERY_DIRECTORY_RESPONSE_FIXED_LENGTH;
  if (fixedEnd > head.length) return beyondCommand('queryDirectory', fixedEnd, commandLength);
  const dataOffset = head.readUInt16LE(body + 2);
  const dataLength = head.readUInt32LE(body + 4);
  if (dataLength > 0 && dataOffset < fixedEnd)
    return beyondCommand('outputBufferOffset', dataOffset, fixedEnd);
  if (dataOffset + dataLength > commandLength) {
    return beyondCommand('outputBuffer', dataOffset + dataLength, commandLength);
  }
  return { dataOffset, dataLength };
}

/** Smallest NextEntryOffset that can hold an entry's fixed fields (FILE_NAMES_INFORMATION, 12 bytes). */
const MIN_ENTRY_LENGTH = 12;

/**
 * Counts entries by walking NextEntryOffset over the output buffer as it streams past, keeping
 * only the position of the next entry and the bytes of a NextEntryOffset split across chunks.
 */
export class DirectoryEntryCounter {
  entries = 0;
  /** Set when an offset was invalid or the count reached its limit; counting has stopped. */
  failure: { nextEntryOffset: number; position: number } | null = null;
  private nextEntry = 0;
  private done = false;
  private readonly field = Buffer.alloc(4);
  private fieldBytes = 0;

  constructor(
    private readonly bufferLength: number,
    private readonly maxEntries: number,
  ) {
    this.done = bufferLength === 0;
  }

  /** Feeds `bytes`, which start at `position` of the output buffer. */
  feed(bytes: Buffer, position: number): void {
    let index = Math.max(0, this.nextEntry + this.fieldBytes - position);
    while (!this.done && index < bytes.length) {
      const byte = bytes[index] as number;
      this.field[this.fieldBytes++] = byte;
      index++;
      if (this.fieldBytes < 4) continue;
      this.fieldBytes = 0;
      this.countEntry(this.field.readUInt32LE(0));
      index = this.nextEntry - position;
    }
  }

  private countEntry(nextEntryOffset: number): void {
    this.entries++;
    const next = this.nextEntry + nextEntryOffset;
    if (nextEntryOffset === 0) {
      this.done = true;
    } else if (
      nextEntryOffset < MIN_ENTRY_LENGTH ||
      next + 4 > this.bufferLength ||
      this.entries >= this.maxEntries
    ) {
      this.failure = { nextEntryOffset, position: this.nextEntry };
      this.done = true;
    } else {
      this.nextEntry = next;
    }
  }
}
