// The contract between a front-end (span capture or inline proxy) and the engine.
// A front-end opens a flow, feeds it bytes per side as they pass, and ends it; the engine runs
// the analyzers, meters and policy, and tells the front-end about verdicts that must act.

import type { Endpoint, Millis, Side } from './types.js';

export type FlowEndReason =
  | 'fin'
  | 'rst'
  | 'idle-timeout'
  | 'evicted'
  | 'input-end'
  | 'cut'
  | 'refused'
  /** The inline gateway could not connect to the upstream (refused, unreachable, timed out). */
  | 'unreachable'
  /** The gateway stopped and reset the connection when its drain deadline passed. */
  | 'shutdown'
  | 'error';

export type VerdictAction = 'allow' | 'alert' | 'throttle' | 'block';

/**
 * A rule decision about one flow. Inline front-ends act on `block` and `throttle`; span
 * front-ends only report.
 */
export interface Verdict {
  action: VerdictAction;
  ruleId: string;
  ruleName: string;
  /** The event.action of the alert this verdict raised, for example 'egress-threshold-exceeded'. */
  eventAction: string;
  /** True when the rule is in dry-run: the verdict is reported but must not be enforced. */
  dryRun: boolean;
  /** throttle: egress bytes per second allowed to the flow's remote, shared by its flows. */
  rateBytesPerSecond?: number;
}

export interface FlowOpenOptions {
  initiator: Endpoint;
  responder: Endpoint;
  ts: Millis;
  /** A name for the responder known before any byte passes (CONNECT or SOCKS target). */
  responderName?: { name: string; source: 'connect' | 'socks' };
  /** Protocol hint from a listener's configuration; content still decides. */
  protocolHint?: 'dicom' | 'http' | 'tls' | 'smb';
  /** True when the capture missed the connection's start (no SYN seen). */
  midStream?: boolean;
}

export interface FlowHandle {
  readonly id: string;
  /** Feed payload bytes sent by `side`. The chunk may be reused after the call. */
  data(side: Side, chunk: Buffer, ts: Millis): void;
  /** Report `length` payload bytes from `side` that were never seen. */
  gap(side: Side, length: number, ts: Millis): void;
  end(ts: Millis, reason: FlowEndReason): void;
  /** Verdicts with action `block` that are not dry-run; inline front-ends cut the flow on them. */
  onBlock(listener: (verdict: Verdict) => void): void;
  /**
   * Verdicts with action `throttle` that are not dry-run, once per rule; inline front-ends cap
   * the flow's egress at the verdict's rate. Throttles raised before the call are replayed.
   */
  onThrottle(listener: (verdict: Verdict) => void): void;
}
