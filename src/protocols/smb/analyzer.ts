// The SMB2/3 analyzer for one flow: frames both directions, matches responses to requests by
// MessageId, and turns sessions, tree connects and file operations into observations.
import type {
  Analyzer,
  AnalyzerSink,
  FlowView,
  Millis,
  Side,
  SmbFileAccess,
} from '../../engine/types.js';
import { SmbAnomaly, type SmbAnomalyName } from './anomalies.js';
import { decodeCloseRequest } from './commands/close.js';
import {
  type CreateRequest,
  decodeCreateRequest,
  decodeCreateResponse,
} from './commands/create.js';
import { decodeNegotiateResponse } from './commands/negotiate.js';
import {
  DirectoryEntryCounter,
  decodeQueryDirectoryRequest,
  decodeQueryDirectoryResponse,
} from './commands/query-directory.js';
import { decodeReadRequest, decodeReadResponse, type ReadRequest } from './commands/read.js';
import { type DecodeFailure, isFailure } from './commands/result.js';
import {
  decodeSessionSetupRequest,
  decodeSessionSetupResponse,
  type SessionSetupRequest,
} from './commands/session-setup.js';
import { decodeSetInfoRequest, type SetInfoRequest } from './commands/set-info.js';
import { decodeTreeConnectRequest } from './commands/tree-connect.js';
import { decodeWriteRequest } from './commands/write.js';
import { DataCounter } from './data-counter.js';
import { type FramingSink, SmbFramer, type TailConsumer } from './framing.js';
import { Command, MAX_COMMAND, RELATED_FILE_ID, type Smb2Header, Status } from './header.js';
import { DEFAULT_SMB_LIMITS, type SmbLimits } from './limits.js';
import {
  type FileState,
  looksLikeDicomName,
  newSession,
  RangeSet,
  type SessionState,
  summarizeSession,
} from './state.js';

/** The FileId of the CREATE in a compound chain, for related operations that name 0xFF..FF. */
interface Chain {
  fileId: string | null;
  sessionId: bigint;
  treeId: number;
}

type PendingDetail =
  | { command: typeof Command.sessionSetup; request: SessionSetupRequest }
  | { command: typeof Command.treeConnect; path: string }
  | { command: typeof Command.create; request: CreateRequest }
  | { command: typeof Command.read; request: ReadRequest }
  | { command: typeof Command.close; fileId: string }
  | { command: typeof Command.queryDirectory; fileId: string }
  | { command: typeof Command.setInfo; request: SetInfoRequest }
  | { command: typeof Command.logoff };

interface Pending {
  detail: PendingDetail;
  sessionId: bigint;
  treeId: number;
  chain: Chain;
}

const MAX_UINT32 = 0xffffffff;
const UNSET_SESSION = 0xffffffffffffffffn;

export class SmbAnalyzer implements Analyzer, FramingSink {
  readonly protocol = 'smb' as const;
  private readonly framers: [SmbFramer, SmbFramer];
  private readonly sessions = new Map<bigint, SessionState>();
  private readonly files = new Map<string, FileState>();
  private readonly pending = new Map<bigint, Pending>();
  private readonly anomalyCounts = new Map<string, number>();
  private readonly chains: [Chain, Chain] = [
    { fileId: null, sessionId: 0n, treeId: 0 },
    { fileId: null, sessionId: 0n, treeId: 0 },
  ];
  private dialect = '';
  private legacySmb1 = false;
  private sessionsEmitted = 0;
  private ended = false;

  constructor(
    _flow: FlowView,
    private readonly sink: AnalyzerSink,
    private readonly limits: SmbLimits = DEFAULT_SMB_LIMITS,
  ) {
    this.framers = [new SmbFramer(0, limits, this), new SmbFramer(1, limits, this)];
  }

  data(side: Side, chunk: Buffer, ts: Millis): void {
    if (!this.ended) this.framers[side].data(chunk, ts);
  }

  gap(side: Side, length: number, ts: Millis): void {
    if (!this.ended) this.framers[side].gap(length, ts);
  }

  end(ts: Millis): void {
    if (this.ended) return;
    this.ended = true;
    this.framers[0].end(ts);
    this.framers[1].end(ts);
    for (const [fileId, file] of this.files) this.emitFile(fileId, file, 'flow-end', ts);
    const unnamed = this.sessions.get(0n);
    for (const session of this.sessions.values()) {
      if (session !== unnamed) this.emitSession(session, 'flow-end', ts);
    }
    // Messages sent before any SessionId: reported only when the flow had no other session.
    if (unnamed !== undefined && this.sessionsEmitted === 0)
      this.emitSession(unnamed, 'flow-end', ts);
    for (const [name, count] of this.anomalyCounts) {
      if (count > this.limits.maxAnomaliesPerName) {
        this.sink.anomaly(SmbAnomaly.suppressed, ts, {
          name,
          count: count - this.limits.maxAnomaliesPerName,
        });
      }
    }
  }

  // --- FramingSink ---

  messageBytes(side: Side, sessionId: bigint, length: number, ts: Millis): void {
    const session = this.session(sessionId, ts);
    session.bytesBySide[side] += length;
  }

  transform(_side: Side, sessionId: bigint, ts: Millis): void {
    this.session(sessionId, ts).encrypted = true;
  }

  smb1(_side: Side, _ts: Millis): void {
    this.legacySmb1 = true;
  }

  anomaly(name: SmbAnomalyName, ts: Millis, details: Record<string, string | number>): void {
    const count = (this.anomalyCounts.get(name) ?? 0) + 1;
    this.anomalyCounts.set(name, count);
    if (count <= this.limits.maxAnomaliesPerName) this.sink.anomaly(name, ts, details);
  }

  command(
    side: Side,
    header: Smb2Header,
    head: Buffer,
    commandLength: number,
    chainIndex: number,
    ts: Millis,
  ): TailConsumer | null {
    if (header.command > MAX_COMMAND) {
      this.anomaly(SmbAnomaly.unknownCommand, ts, { command: header.command });
      return null;
    }
    if (header.isSigned && header.sessionId !== 0n && header.sessionId !== UNSET_SESSION) {
      this.session(header.sessionId, ts).signed = true;
    }
    if (!header.isResponse) return this.request(side, header, head, commandLength, chainIndex, ts);
    return this.response(header, head, commandLength, ts);
  }

  // --- requests ---

  private request(
    side: Side,
    header: Smb2Header,
    head: Buffer,
    commandLength: number,
    chainIndex: number,
    ts: Millis,
  ): TailConsumer | null {
    const chain = this.chainFor(side, header, chainIndex);
    const complete = head.length === commandLength;
    if (header.command === Command.write)
      return this.writeRequest(header, head, commandLength, chain, ts);

    const decoded = complete ? this.decodeRequest(header, head) : null;
    if (!complete && decodesRequest(header.command)) {
      this.anomaly(SmbAnomaly.commandTooLarge, ts, {
        command: header.command,
        commandLength,
        maximum: this.limits.maxBufferedCommand,
      });
    }
    if (decoded === null) return null;
    if (isFailure(decoded)) {
      this.anomaly(decoded.failure, ts, { command: header.command, ...decoded.details });
      return null;
    }
    if (decoded.command === Command.sessionSetup && header.sessionId !== 0n) {
      this.applyAuth(header.sessionId, decoded.request, ts);
    }
    this.remember(
      header,
      { detail: decoded, sessionId: chain.sessionId, treeId: chain.treeId, chain },
      ts,
    );
    return null;
  }

  private decodeRequest(header: Smb2Header, head: Buffer): PendingDetail | DecodeFailure | null {
    switch (header.command) {
      case Command.sessionSetup: {
        const request = decodeSessionSetupRequest(head);
        return isFailure(request) ? request : { command: Command.sessionSetup, request };
      }
      case Command.treeConnect: {
        const path = decodeTreeConnectRequest(head);
        return typeof path === 'string' ? { command: Command.treeConnect, path } : path;
      }
      case Command.create: {
        const request = decodeCreateRequest(head);
        return isFailure(request) ? request : { command: Command.create, request };
      }
      case Command.read: {
        const request = decodeReadRequest(head);
        return isFailure(request) ? request : { command: Command.read, request };
      }
      case Command.close: {
        const fileId = decodeCloseRequest(head);
        return typeof fileId === 'string' ? { command: Command.close, fileId } : fileId;
      }
      case Command.queryDirectory: {
        const fileId = decodeQueryDirectoryRequest(head);
        return typeof fileId === 'string' ? { command: Command.queryDirectory, fileId } : fileId;
      }
      case Command.setInfo: {
        const request = decodeSetInfoRequest(head);
        return isFailure(request) ? request : { command: Command.setInfo, request };
      }
      case Command.logoff:
        return { command: Command.logoff };
      default:
        return null;
    }
  }

  /** Starts a new chain for the first command of a message; related commands inherit its ids. */
  private chainFor(side: Side, header: Smb2Header, chainIndex: number): Chain {
    if (chainIndex === 0 || !header.isRelated) {
      const chain = { fileId: null, sessionId: header.sessionId, treeId: header.treeId };
      this.chains[side] = chain;
      return chain;
    }
    const chain = this.chains[side];
    if (header.sessionId !== UNSET_SESSION) chain.sessionId = header.sessionId;
    if (header.treeId !== MAX_UINT32) chain.treeId = header.treeId;
    return chain;
  }

  private remember(header: Smb2Header, pending: Pending, ts: Millis): void {
    if (this.pending.size >= this.limits.maxPendingRequests) {
      this.anomaly(SmbAnomaly.tableFull, ts, {
        table: 'pending-requests',
        maximum: this.limits.maxPendingRequests,
      });
      return;
    }
    this.pending.set(header.messageId, pending);
  }

  private writeRequest(
    header: Smb2Header,
    head: Buffer,
    commandLength: number,
    chain: Chain,
    ts: Millis,
  ): TailConsumer | null {
    const request = decodeWriteRequest(head, commandLength);
    if (isFailure(request)) {
      this.anomaly(request.failure, ts, { command: header.command, ...request.details });
      return null;
    }
    const fileId = request.fileId === RELATED_FILE_ID ? chain.fileId : request.fileId;
    const file = fileId === null ? undefined : this.files.get(fileId);
    const session = this.session(file?.sessionId ?? chain.sessionId, ts);
    const counter = new DataCounter(request.dataOffset, request.dataLength, request.offset === 0, {
      data: (bytes, at) => {
        session.bytesWritten += bytes;
        if (file !== undefined) {
          file.bytesWritten += bytes;
          file.lastTs = at;
        }
        this.emitData(0, 'write', bytes, session, file, at);
      },
      done: (_seen, _complete, dicmSeen) => {
        if (file !== undefined && dicmSeen) file.looksLikeDicom = true;
      },
    });
    counter.feed(head, 0, ts);
    return counter;
  }

  // --- responses ---

  private response(
    header: Smb2Header,
    head: Buffer,
    commandLength: number,
    ts: Millis,
  ): TailConsumer | null {
    if (header.isAsync && header.status === Status.pending) return null;
    if (header.command === Command.negotiate && header.status === Status.success) {
      const dialect = decodeNegotiateResponse(head);
      if (typeof dialect === 'string') this.dialect = dialect;
      else this.anomaly(dialect.failure, ts, { command: header.command, ...dialect.details });
      return null;
    }
    const pending = this.pending.get(header.messageId);
    if (pending === undefined) return null;
    this.pending.delete(header.messageId);
    const detail = pending.detail;
    const ok = header.status === Status.success;

    switch (detail.command) {
      case Command.sessionSetup:
        this.sessionSetupResponse(header, head, detail.request, ts);
        return null;
      case Command.treeConnect:
        if (ok) this.treeConnected(header, detail.path, ts);
        return null;
      case Command.create:
        if (ok) this.created(header, head, pending, detail.request, ts);
        return null;
      case Command.read:
        return ok
          ? this.readResponse(header, head, commandLength, pending, detail.request, ts)
          : null;
      case Command.close:
        if (ok) this.closed(this.resolveFileId(detail.fileId, pending.chain), ts);
        return null;
      case Command.queryDirectory:
        return ok ? this.directoryResponse(header, head, commandLength, pending, ts) : null;
      case Command.setInfo:
        if (ok) this.infoSet(detail.request, pending.chain);
        return null;
      case Command.logoff:
        this.loggedOff(pending.sessionId, ts);
        return null;
    }
  }

  private sessionSetupResponse(
    header: Smb2Header,
    head: Buffer,
    request: SessionSetupRequest,
    ts: Millis,
  ): void {
    if (header.sessionId === 0n) return;
    const session = this.session(header.sessionId, ts);
    if (session.auth === 'unknown' || session.user === '')
      this.applyAuth(header.sessionId, request, ts);
    if (header.status !== Status.success) return;
    const flags = decodeSessionSetupResponse(head);
    if (isFailure(flags)) {
      this.anomaly(flags.failure, ts, { command: header.command, ...flags.details });
      return;
    }
    if (flags.anonymous) session.auth = 'anonymous';
    if (flags.encryptData) session.encrypted = true;
  }

  private applyAuth(sessionId: bigint, request: SessionSetupRequest, ts: Millis): void {
    const session = this.session(sessionId, ts);
    if (request.auth !== 'unknown' || session.auth === 'unknown') session.auth = request.auth;
    if (request.ntlmFailure !== undefined) {
      this.anomaly(request.ntlmFailure.failure, ts, request.ntlmFailure.details);
    }
    const ntlm = request.ntlm;
    if (ntlm === undefined || session.user !== '' || ntlm.user === '') return;
    session.user = ntlm.user;
    session.domain = ntlm.domain;
    session.workstation = ntlm.workstation;
    this.sink.observe(
      {
        kind: 'smb-user',
        sessionId: sessionId.toString(16),
        user: ntlm.user,
        domain: ntlm.domain,
        workstation: ntlm.workstation,
      },
      ts,
    );
  }

  private treeConnected(header: Smb2Header, path: string, ts: Millis): void {
    const session = this.session(header.sessionId, ts);
    if (
      session.shares.size >= this.limits.maxSharesPerSession &&
      !session.shares.has(header.treeId)
    ) {
      this.anomaly(SmbAnomaly.tableFull, ts, {
        table: 'shares',
        maximum: this.limits.maxSharesPerSession,
      });
      return;
    }
    session.shares.set(header.treeId, path);
    if (session.shareNames.size < this.limits.maxSharesPerSession) session.shareNames.add(path);
  }

  private created(
    header: Smb2Header,
    head: Buffer,
    pending: Pending,
    request: CreateRequest,
    ts: Millis,
  ): void {
    const response = decodeCreateResponse(head);
    if (isFailure(response)) {
      this.anomaly(response.failure, ts, { command: header.command, ...response.details });
      return;
    }
    pending.chain.fileId = response.fileId;
    if (this.files.size >= this.limits.maxOpenFiles) {
      this.anomaly(SmbAnomaly.tableFull, ts, { table: 'files', maximum: this.limits.maxOpenFiles });
      return;
    }
    const session = this.session(pending.sessionId, ts);
    if (!response.directory) session.filesOpened++;
    this.files.set(response.fileId, {
      sessionId: pending.sessionId,
      share: session.shares.get(pending.treeId) ?? '',
      path: request.path,
      directory: response.directory,
      endOfFile: response.endOfFile,
      bytesRead: 0,
      bytesWritten: 0,
      ranges: new RangeSet(this.limits.maxReadRangesPerFile),
      looksLikeDicom: looksLikeDicomName(request.path),
      firstTs: ts,
      lastTs: ts,
      disposition: request.disposition,
      desiredAccess: request.desiredAccess,
      deleted: request.deleteOnClose,
    });
  }

  private readResponse(
    header: Smb2Header,
    head: Buffer,
    commandLength: number,
    pending: Pending,
    request: ReadRequest,
    ts: Millis,
  ): TailConsumer | null {
    const range = decodeReadResponse(head, commandLength);
    if (isFailure(range)) {
      this.anomaly(range.failure, ts, { command: header.command, ...range.details });
      return null;
    }
    const fileId = this.resolveFileId(request.fileId, pending.chain);
    const file = fileId === null ? undefined : this.files.get(fileId);
    const session = this.session(file?.sessionId ?? pending.sessionId, ts);
    const counter = new DataCounter(range.dataOffset, range.dataLength, request.offset === 0, {
      data: (bytes, at) => {
        session.bytesRead += bytes;
        if (file !== undefined) {
          file.bytesRead += bytes;
          file.lastTs = at;
        }
        this.emitData(1, 'read', bytes, session, file, at);
      },
      done: (seen, complete, dicmSeen, at) => {
        if (file === undefined) return;
        if (dicmSeen) file.looksLikeDicom = true;
        if (complete && !file.ranges.add(request.offset, request.offset + seen)) {
          this.anomaly(SmbAnomaly.tableFull, at, {
            table: 'read-ranges',
            maximum: this.limits.maxReadRangesPerFile,
          });
        }
      },
    });
    counter.feed(head, 0, ts);
    return counter;
  }

  private directoryResponse(
    header: Smb2Header,
    head: Buffer,
    commandLength: number,
    pending: Pending,
    ts: Millis,
  ): TailConsumer | null {
    const range = decodeQueryDirectoryResponse(head, commandLength);
    if (isFailure(range)) {
      this.anomaly(range.failure, ts, { command: header.command, ...range.details });
      return null;
    }
    const session = this.session(pending.sessionId, ts);
    const counter = new DirectoryEntryCounter(range.dataLength, this.limits.maxDirectoryEntries);
    const start = range.dataOffset;
    const end = start + range.dataLength;
    const consumer: TailConsumer = {
      feed: (bytes, commandOffset) => {
        const from = Math.max(commandOffset, start);
        const to = Math.min(commandOffset + bytes.length, end);
        if (to > from)
          counter.feed(bytes.subarray(from - commandOffset, to - commandOffset), from - start);
      },
      gap: () => {},
      end: (_complete, at) => {
        session.directoryListings++;
        session.directoryEntries += counter.entries;
        if (counter.failure !== null) {
          this.anomaly(SmbAnomaly.badDirectoryEntry, at, {
            ...counter.failure,
            bufferLength: range.dataLength,
            maximum: this.limits.maxDirectoryEntries,
          });
        }
      },
    };
    consumer.feed(head, 0, ts);
    return consumer;
  }

  private infoSet(request: SetInfoRequest, chain: Chain): void {
    const fileId = this.resolveFileId(request.fileId, chain);
    const file = fileId === null ? undefined : this.files.get(fileId);
    if (file === undefined) return;
    if (request.renamedTo !== undefined) file.renamedTo = request.renamedTo;
    if (request.deletePending !== undefined) file.deleted = request.deletePending;
  }

  private closed(fileId: string | null, ts: Millis): void {
    const file = fileId === null ? undefined : this.files.get(fileId);
    if (fileId !== null && file !== undefined) this.emitFile(fileId, file, 'close', ts);
  }

  private loggedOff(sessionId: bigint, ts: Millis): void {
    const session = this.sessions.get(sessionId);
    if (session === undefined) return;
    for (const [fileId, file] of this.files) {
      if (file.sessionId === sessionId) this.emitFile(fileId, file, 'logoff', ts);
    }
    this.emitSession(session, 'logoff', ts);
  }

  // --- helpers ---

  private resolveFileId(fileId: string, chain: Chain): string | null {
    return fileId === RELATED_FILE_ID ? chain.fileId : fileId;
  }

  /** Returns the session, creating it; when the table is full, messages count toward session 0. */
  private session(id: bigint, ts: Millis): SessionState {
    const key = id === UNSET_SESSION ? 0n : id;
    const existing = this.sessions.get(key);
    if (existing !== undefined) return existing;
    if (this.sessions.size >= this.limits.maxSessions && key !== 0n) {
      this.anomaly(SmbAnomaly.tableFull, ts, {
        table: 'sessions',
        maximum: this.limits.maxSessions,
      });
      return this.session(0n, ts);
    }
    const session = newSession(key);
    this.sessions.set(key, session);
    return session;
  }

  private emitData(
    senderSide: Side,
    operation: 'read' | 'write',
    bytes: number,
    session: SessionState,
    file: FileState | undefined,
    ts: Millis,
  ): void {
    this.sink.observe(
      {
        kind: 'smb-file-data',
        senderSide,
        operation,
        bytes,
        sessionId: session.id.toString(16),
        share: file?.share ?? '',
        path: file?.path ?? '',
        user: session.user,
      },
      ts,
    );
  }

  private emitFile(
    fileId: string,
    file: FileState,
    outcome: SmbFileAccess['outcome'],
    ts: Millis,
  ): void {
    this.files.delete(fileId);
    const session = this.session(file.sessionId, ts);
    const readFully =
      !file.directory && file.endOfFile > 0 && file.ranges.coversFromZero(file.endOfFile);
    if (readFully) session.filesReadFully++;
    const access: SmbFileAccess = {
      sessionId: file.sessionId.toString(16),
      share: file.share,
      path: file.path,
      user: session.user,
      directory: file.directory,
      bytesRead: file.bytesRead,
      bytesWritten: file.bytesWritten,
      endOfFile: file.endOfFile,
      readFully,
      looksLikeDicom: file.looksLikeDicom,
      firstTs: file.firstTs,
      lastTs: file.lastTs,
      disposition: file.disposition,
      desiredAccess: file.desiredAccess,
      outcome,
    };
    if (file.renamedTo !== undefined) access.renamedTo = file.renamedTo;
    if (file.deleted) access.deleted = true;
    this.sink.observe({ kind: 'smb-file-access', access }, ts);
  }

  private emitSession(session: SessionState, outcome: 'logoff' | 'flow-end', ts: Millis): void {
    this.sessions.delete(session.id);
    this.sessionsEmitted++;
    this.sink.observe(
      {
        kind: 'smb-session',
        summary: summarizeSession(session, this.dialect, this.legacySmb1, outcome),
      },
      ts,
    );
  }
}

/** Commands whose request this analyzer decodes, so a request too large to buffer is an anomaly. */
function decodesRequest(command: number): boolean {
  return (
    command === Command.sessionSetup ||
    command === Command.treeConnect ||
    command === Command.create ||
    command === Command.setInfo
  );
}
