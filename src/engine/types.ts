// Types shared by the front-ends (capture, proxy), the engine and the protocol analyzers.
// Analyzers depend on this file only, never on where their bytes come from.

/** The end of a TCP connection that sent a chunk: 0 the initiator (client), 1 the responder (server). */
export type Side = 0 | 1;

export const INITIATOR: Side = 0;
export const RESPONDER: Side = 1;

/** Time in milliseconds since the Unix epoch, with a fractional part for microseconds. */
export type Millis = number;

export interface Endpoint {
  readonly ip: string;
  readonly port: number;
}

export type ProtocolName = 'dicom' | 'http' | 'tls' | 'smb' | 'unknown';

/** The parts of its flow an analyzer may read. */
export interface FlowView {
  readonly id: string;
  readonly initiator: Endpoint;
  readonly responder: Endpoint;
  /** The side inside a protected network, or null for flows the engine does not meter. */
  readonly insideSide: Side | null;
}

/**
 * The leading attributes of one DICOM dataset, read before Pixel Data.
 * Patient identifiers are in clear here; the event layer pseudonymizes them.
 */
export interface DicomInstanceAttributes {
  sopClassUid?: string;
  sopInstanceUid?: string;
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
  patientId?: string;
  patientName?: string;
  modality?: string;
  accessionNumber?: string;
}

export type DimseCommandName =
  | 'C-STORE-RQ'
  | 'C-STORE-RSP'
  | 'C-GET-RQ'
  | 'C-GET-RSP'
  | 'C-MOVE-RQ'
  | 'C-MOVE-RSP'
  | 'C-FIND-RQ'
  | 'C-FIND-RSP'
  | 'C-ECHO-RQ'
  | 'C-ECHO-RSP'
  | 'C-CANCEL-RQ'
  | 'OTHER';

/** A summary of one DICOM association, emitted when it ends (release, abort, reject or flow end). */
export interface DicomAssociationSummary {
  callingAeTitle: string;
  calledAeTitle: string;
  /** The side that sent the A-ASSOCIATE-RQ. */
  requestorSide: Side;
  maxPduLength: { requestor: number; acceptor: number };
  presentationContexts: Array<{
    id: number;
    abstractSyntax: string;
    transferSyntaxes: string[];
    accepted: boolean;
    acceptedTransferSyntax?: string;
  }>;
  /** 'released', 'aborted', 'rejected' or 'incomplete' (the flow ended first). */
  outcome: 'released' | 'aborted' | 'rejected' | 'incomplete';
  rejectReason?: { result: number; source: number; reason: number };
  abortReason?: { source: number; reason: number };
  /** Count of DIMSE commands by name, both directions. */
  commands: Partial<Record<DimseCommandName, number>>;
  /** Non-success statuses seen in responses, by status code in hex (for example 'a700'). */
  failureStatuses: Record<string, number>;
  /** Move Destination AE titles of C-MOVE requests. */
  moveDestinations: string[];
  /** Side that sent C-STORE datasets, or null when none were sent. */
  dataSenderSide: Side | null;
  instances: number;
  datasetBytes: number;
  studies: string[];
  patients: string[];
  /** Application context name from the A-ASSOCIATE-RQ (normally 1.2.840.10008.3.1.1.1). */
  applicationContextName?: string;
  /** Implementation Class UID and Version Name each side sent in its user information item. */
  implementation?: {
    requestorClassUid?: string;
    requestorVersionName?: string;
    acceptorClassUid?: string;
    acceptorVersionName?: string;
  };
  /** True when the analyzer never saw the association negotiation (capture started mid-stream). */
  midStream?: boolean;
}

/** Typed observations that analyzers report to the engine. */
export type Observation =
  | { kind: 'remote-name'; name: string; source: 'sni' | 'http-host' | 'connect' | 'socks' | 'dns' }
  | {
      kind: 'dicom-association-request';
      callingAeTitle: string;
      calledAeTitle: string;
      requestorSide: Side;
    }
  | {
      kind: 'dicom-instance';
      /** Side that sent the dataset. */
      senderSide: Side;
      command: 'C-STORE-RQ';
      callingAeTitle: string;
      calledAeTitle: string;
      attributes: DicomInstanceAttributes;
      /** Dataset bytes seen so far for this instance (counted as they arrive). */
      datasetBytes: number;
      /**
       * How far `attributes` can be trusted: 'complete' when the dataset head was read up to
       * Series Instance UID, 'incomplete' when it ended or broke first, 'not-parsed' for deflated
       * datasets. SOP Class and Instance UID fall back to the C-STORE command's values.
       */
      attributesStatus?: 'complete' | 'incomplete' | 'not-parsed';
      /** Transfer syntax of the presentation context, absent when the association was not seen. */
      transferSyntaxUid?: string;
    }
  | {
      kind: 'dicom-move-request';
      callingAeTitle: string;
      calledAeTitle: string;
      moveDestination: string;
      studyInstanceUid?: string;
      patientId?: string;
    }
  | { kind: 'dicom-association'; summary: DicomAssociationSummary }
  | {
      kind: 'http-request';
      method: string;
      host?: string;
      target: string;
      userAgent?: string;
      contentType?: string;
      contentLength?: number;
      chunked: boolean;
      requestBodyBytes: number;
      responseStatus?: number;
      responseBodyBytes: number;
      /** True when the exchange ended before its response was complete. */
      incomplete: boolean;
    }
  | {
      /**
       * A request head, reported as soon as it is parsed so rules on the User-Agent act before
       * the body passes; 'http-request' follows when the exchange ends.
       */
      kind: 'http-request-head';
      method: string;
      target: string;
      host?: string;
      userAgent?: string;
      contentLength?: number;
    }
  | { kind: 'tls-client-hello'; serverName?: string; alpn: string[]; version: number }
  | { kind: 'smb-user'; sessionId: string; user: string; domain: string; workstation: string }
  | { kind: 'smb-session'; summary: SmbSessionSummary }
  | { kind: 'smb-file-access'; access: SmbFileAccess }
  | {
      kind: 'smb-file-data';
      /** Side that sent the file data: the responder for READ, the initiator for WRITE. */
      senderSide: Side;
      operation: 'read' | 'write';
      /** Data bytes of one READ response or WRITE request that passed in this chunk. */
      bytes: number;
      sessionId: string;
      share: string;
      path: string;
      user: string;
    };

export type SmbAuth = 'ntlm' | 'kerberos' | 'anonymous' | 'unknown';

/** One SMB session (SessionId) on a flow, emitted at LOGOFF or when the flow ends. */
export interface SmbSessionSummary {
  /** SessionId in hex, as tshark prints it; '0' gathers messages sent before any session. */
  sessionId: string;
  user: string;
  domain: string;
  workstation: string;
  auth: SmbAuth;
  /** Dialect chosen in the NEGOTIATE response, for example '3.1.1', or '' when not seen. */
  dialect: string;
  /** True once a transform header (0xFD 'SMB') or the ENCRYPT_DATA session flag was seen. */
  encrypted: boolean;
  /** True once a message of this session carried SMB2_FLAGS_SIGNED. */
  signed: boolean;
  /** True when the flow carried SMB1 (0xFF 'SMB') messages. */
  legacySmb1: boolean;
  /** Share paths from TREE_CONNECT requests, for example \\server\scans. */
  shares: string[];
  filesOpened: number;
  filesReadFully: number;
  bytesRead: number;
  bytesWritten: number;
  /** Successful QUERY_DIRECTORY responses. */
  directoryListings: number;
  /** Directory entries counted in those responses (including '.' and '..'). */
  directoryEntries: number;
  /** NetBIOS message bytes of this session sent by each side, indexed by Side. */
  bytesBySide: [number, number];
  outcome: 'logoff' | 'flow-end';
}

/** One opened file or directory, emitted at CLOSE or when its session or flow ends. */
export interface SmbFileAccess {
  sessionId: string;
  share: string;
  /** Path relative to the share, as sent in the CREATE request. */
  path: string;
  user: string;
  directory: boolean;
  bytesRead: number;
  bytesWritten: number;
  /** End-of-file size from the CREATE response. */
  endOfFile: number;
  /** True when the ranges read cover the file from 0 to its end-of-file size. */
  readFully: boolean;
  /** True for .dcm or DICOMDIR names, or 'DICM' at offset 128 of data read or written at offset 0. */
  looksLikeDicom: boolean;
  firstTs: Millis;
  lastTs: Millis;
  disposition:
    | 'supersede'
    | 'open'
    | 'create'
    | 'open-if'
    | 'overwrite'
    | 'overwrite-if'
    | 'unknown';
  /** DesiredAccess mask of the CREATE request. */
  desiredAccess: number;
  renamedTo?: string;
  deleted?: boolean;
  outcome: 'close' | 'logoff' | 'flow-end';
}

/** Receives what an analyzer finds. Implemented by the engine for each flow. */
export interface AnalyzerSink {
  observe(observation: Observation, ts: Millis): void;
  /** A parse anomaly: a stable name SIEM rules can key on, and bounded numeric details. */
  anomaly(name: string, ts: Millis, details?: Record<string, string | number>): void;
}

/**
 * An incremental protocol state machine for one TCP flow.
 * `data` chunks are views that may be reused after the call returns: copy what must be kept.
 * Analyzers never throw on malformed input; they report an anomaly and stop parsing.
 */
export interface Analyzer {
  readonly protocol: ProtocolName;
  data(side: Side, chunk: Buffer, ts: Millis): void;
  /** `length` bytes from `side` were never seen (capture loss or mid-stream start). */
  gap(side: Side, length: number, ts: Millis): void;
  end(ts: Millis): void;
}

export type AnalyzerFactory = (flow: FlowView, sink: AnalyzerSink) => Analyzer;
