// Per-flow SMB state: sessions, trees and open files, each in a bounded table.
import type { Millis, SmbAuth, SmbFileAccess, SmbSessionSummary } from '../../engine/types.js';

export interface SessionState {
  id: bigint;
  user: string;
  domain: string;
  workstation: string;
  auth: SmbAuth;
  encrypted: boolean;
  signed: boolean;
  shares: Map<number, string>;
  /** Every share path connected, kept after TREE_DISCONNECT for the summary. */
  shareNames: Set<string>;
  filesOpened: number;
  filesReadFully: number;
  bytesRead: number;
  bytesWritten: number;
  directoryListings: number;
  directoryEntries: number;
  bytesBySide: [number, number];
}

export function newSession(id: bigint): SessionState {
  return {
    id,
    user: '',
    domain: '',
    workstation: '',
    auth: 'unknown',
    encrypted: false,
    signed: false,
    shares: new Map(),
    shareNames: new Set(),
    filesOpened: 0,
    filesReadFully: 0,
    bytesRead: 0,
    bytesWritten: 0,
    directoryListings: 0,
    directoryEntries: 0,
    bytesBySide: [0, 0],
  };
}

export interface FileState {
  sessionId: bigint;
  share: string;
  path: string;
  directory: boolean;
  endOfFile: number;
  bytesRead: number;
  bytesWritten: number;
  ranges: RangeSet;
  looksLikeDicom: boolean;
  firstTs: Millis;
  lastTs: Millis;
  disposition: SmbFileAccess['disposition'];
  desiredAccess: number;
  renamedTo?: string;
  deleted: boolean;
}

const DICOM_NAME = /(\.dcm|(^|\\)DICOMDIR)$/i;

export function looksLikeDicomName(path: string): boolean {
  return DICOM_NAME.test(path);
}

/** Disjoint, sorted [start, end) byte ranges, at most `maxRanges` of them. */
export class RangeSet {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  constructor(private readonly maxRanges: number) {}

  /** Adds a range, merging it with those it touches. Returns false when the set is full. */
  add(start: number, end: number): boolean {
    if (end <= start) return true;
    let first = 0;
    while (first < this.starts.length && (this.ends[first] as number) < start) first++;
    let last = first;
    let mergedStart = start;
    let mergedEnd = end;
    while (last < this.starts.length && (this.starts[last] as number) <= end) {
      mergedStart = Math.min(mergedStart, this.starts[last] as number);
      mergedEnd = Math.max(mergedEnd, this.ends[last] as number);
      last++;
    }
    if (last === first && this.starts.length >= this.maxRanges) return false;
    this.starts.splice(first, last - first, mergedStart);
    this.ends.splice(first, last - first, mergedEnd);
    return true;
  }

  /** Returns true when [0, end) lies inside one range. */
  coversFromZero(end: number): boolean {
    return this.starts[0] === 0 && (this.ends[0] as number) >= end;
  }
}

export function summarizeSession(
  session: SessionState,
  dialect: string,
  legacySmb1: boolean,
  outcome: SmbSessionSummary['outcome'],
): SmbSessionSummary {
  return {
    sessionId: session.id.toString(16),
    user: session.user,
    domain: session.domain,
    workstation: session.workstation,
    auth: session.auth,
    dialect,
    encrypted: session.encrypted,
    signed: session.signed,
    legacySmb1,
    shares: [...session.shareNames],
    filesOpened: session.filesOpened,
    filesReadFully: session.filesReadFully,
    bytesRead: session.bytesRead,
    bytesWritten: session.bytesWritten,
    directoryListings: session.directoryListings,
    directoryEntries: session.directoryEntries,
    bytesBySide: [session.bytesBySide[0], session.bytesBySide[1]],
    outcome,
  };
}
