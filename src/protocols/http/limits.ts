// Named limits and anomaly names of the HTTP/1.x analyzer.

export interface HttpLimits {
  /** Maximum bytes of a start line plus header fields (or of a trailer section). */
  maxHeaderBytes: number;
  /** Maximum requests waiting for their responses on one connection. */
  maxPipelineDepth: number;
  /** Maximum bytes of one chunk-size line, chunk extensions included. */
  maxChunkLineBytes: number;
  /** User-Agent values longer than this are truncated. */
  maxUserAgentChars: number;
  /** Request targets longer than this are truncated. */
  maxTargetChars: number;
  /** Content-Type values longer than this are truncated. */
  maxContentTypeChars: number;
  /** Bytes scanned for the next start line after a gap before parsing stops for the flow. */
  maxResyncBytes: number;
}

export const DEFAULT_HTTP_LIMITS: Readonly<HttpLimits> = {
  maxHeaderBytes: 64 * 1024,
  maxPipelineDepth: 64,
  maxChunkLineBytes: 4096,
  maxUserAgentChars: 512,
  maxTargetChars: 2048,
  maxContentTypeChars: 256,
  maxResyncBytes: 1024 * 1024,
};

/**
 * Anomaly names reported to the sink. After any of them except `http.obsolete_line_folding`,
 * `http.ambiguous_length`, `http.gap` and `http.resynced` the analyzer stops parsing the flow and
 * only the engine's byte counters go on. After `http.gap` the analyzer scans for the next start
 * line and reports `http.resynced` when it finds one or `http.resync_failed` when it gives up.
 */
export type HttpAnomaly =
  | 'http.bad_request_line'
  | 'http.bad_status_line'
  | 'http.bad_header_line'
  | 'http.obsolete_line_folding'
  | 'http.header_too_large'
  | 'http.bad_content_length'
  | 'http.bad_transfer_encoding'
  | 'http.ambiguous_length'
  | 'http.bad_chunk'
  | 'http.chunk_line_too_long'
  | 'http.pipeline_too_deep'
  | 'http.unexpected_response'
  | 'http.gap'
  | 'http.resynced'
  | 'http.resync_failed';
