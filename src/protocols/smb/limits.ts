// Bounds on what the SMB analyzer keeps per flow. Each one has a test that lowers it.

export interface SmbLimits {
  /** Largest NetBIOS message accepted, in bytes (the field itself allows 16 MiB - 1). */
  maxMessageLength: number;
  /** Commands up to this many bytes are buffered whole and decoded; larger ones stream. */
  maxBufferedCommand: number;
  /** Requests awaiting their response (MessageId table). */
  maxPendingRequests: number;
  maxSessions: number;
  /** Open files (FileId table) per flow. */
  maxOpenFiles: number;
  /** Shares remembered per session. */
  maxSharesPerSession: number;
  /** Disjoint byte ranges remembered per file to decide whether it was read fully. */
  maxReadRangesPerFile: number;
  /** Entries counted in one QUERY_DIRECTORY response before counting stops. */
  maxDirectoryEntries: number;
  /** Anomalies reported per name per flow; later ones are only counted. */
  maxAnomaliesPerName: number;
}

export const DEFAULT_SMB_LIMITS: Readonly<SmbLimits> = Object.freeze({
  maxMessageLength: 0xffffff,
  maxBufferedCommand: 16 * 1024,
  maxPendingRequests: 1024,
  maxSessions: 64,
  maxOpenFiles: 4096,
  maxSharesPerSession: 64,
  maxReadRangesPerFile: 64,
  maxDirectoryEntries: 1_000_000,
  maxAnomaliesPerName: 16,
});
