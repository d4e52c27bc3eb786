// The event object tollgate emits, in Elastic Common Schema (ECS) field names so that events
// land in a SIEM with little mapping work. Fields specific to tollgate live under `tollgate.*`.
// docs/events.md lists which fields each event.action carries.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';

export const EVENT_ACTIONS = [
  'network-flow',
  'dicom-association',
  'http-request',
  'tls-client-hello',
  'egress-meter',
  'egress-threshold-exceeded',
  'bulk-dicom-egress',
  'bulk-file-copy',
  'cloud-storage-transfer',
  'destination-not-allowed',
  'connection-blocked',
  'transfer-cut',
  'smb-file-access',
  'smb-session',
] as const;
export type EventAction = (typeof EVENT_ACTIONS)[number];

export type EventKind = 'event' | 'alert';
export type EventCategory =
  | 'network'
  | 'file'
  | 'intrusion_detection'
  | 'web'
  | 'session'
  | 'authentication';
export type EventType =
  | 'connection'
  | 'start'
  | 'end'
  | 'info'
  | 'denied'
  | 'allowed'
  | 'access'
  | 'change'
  | 'protocol';
/**
 * ECS network.direction as a perimeter monitor reports it: from the protected networks' point
 * of view, by which side opened the flow.
 */
export type NetworkDirection = 'outbound' | 'inbound' | 'internal' | 'external' | 'unknown';
/**
 * The outcome of an alert: alerted, throttled or blocked, or would have throttled or blocked
 * (span mode or dry-run).
 */
export type Verdict = 'alert' | 'throttle' | 'would-throttle' | 'block' | 'would-block';

export interface EcsObserver {
  vendor: 'tollgate';
  product: 'tollgate';
  /** 'ids' for span mode (passive), 'proxy' for inline mode. */
  type: 'ids' | 'proxy';
  version: string;
  hostname: string;
}

export interface EcsEndpoint {
  ip?: string;
  port?: number;
  bytes?: number;
  packets?: number;
  domain?: string;
}

export interface TollgateFields {
  /** The endpoint outside the protected networks, whichever side opened the flow. */
  remote?: { ip?: string; port?: number; domain?: string; domain_source?: string };
  egress?: { bytes?: number; estimated_missing_bytes?: number };
  verdict?: Verdict;
  dry_run?: boolean;
  /** Protocol and meter fields; docs/events.md lists them per event.action. */
  [key: string]: unknown;
}

export interface EcsEvent {
  '@timestamp': string;
  event: {
    id: string;
    kind: EventKind;
    category: EventCategory[];
    type: EventType[];
    action: EventAction;
    dataset: string;
    module: 'tollgate';
    severity?: number;
    start?: string;
    end?: string;
    duration?: number;
    reason?: string;
  };
  rule?: { id: string; name: string };
  source?: EcsEndpoint;
  destination?: EcsEndpoint;
  network?: {
    transport?: 'tcp' | 'udp';
    protocol?: string;
    direction?: NetworkDirection;
    community_id?: string;
    bytes?: number;
    packets?: number;
  };
  user?: { name?: string; domain?: string };
  url?: { domain?: string; path?: string; original?: string };
  http?: {
    request?: { method?: string; bytes?: number };
    response?: { status_code?: number; bytes?: number };
  };
  user_agent?: { original?: string };
  tls?: { client?: { server_name?: string } };
  observer: EcsObserver;
  tollgate?: TollgateFields;
}

/** Reads the version from the package.json two levels up, which holds for src/ and dist/. */
function packageVersion(): string {
  try {
    const text = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
    const version = (JSON.parse(text) as { version?: unknown }).version;
    return typeof version === 'string' ? version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export const TOLLGATE_VERSION = packageVersion();

/** Describes this gateway for `observer.*`. */
export function createObserver(type: 'ids' | 'proxy', hostname = osHostname()): EcsObserver {
  return { vendor: 'tollgate', product: 'tollgate', type, version: TOLLGATE_VERSION, hostname };
}

const CROCKFORD_BASE32 = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * Returns a ULID: 10 base32 characters of the millisecond time, then 16 of random bits (80).
 * Ids sort by time, which keeps SIEM indexes and de-duplication cheap.
 */
export function newEventId(ts: number): string {
  let time = Math.max(0, Math.min(Math.floor(ts), 2 ** 48 - 1));
  let text = '';
  for (let i = 0; i < 10; i++) {
    text = CROCKFORD_BASE32[time % 32] + text;
    time = Math.floor(time / 32);
  }
  const random = randomBytes(10);
  // 80 random bits make 16 characters of 5 bits each.
  let bits = 0;
  let bitCount = 0;
  for (const byte of random) {
    bits = (bits << 8) | byte;
    bitCount += 8;
    while (bitCount >= 5) {
      bitCount -= 5;
      text += CROCKFORD_BASE32[(bits >> bitCount) & 31];
    }
    bits &= (1 << bitCount) - 1;
  }
  return text;
}

/** Formats epoch milliseconds (with fractional microseconds) as ISO 8601 in UTC. */
export function isoTime(ts: number): string {
  return new Date(Math.floor(ts)).toISOString();
}

/** ECS network.direction for a flow, from whether each end lies in a protected network. */
export function networkDirection(
  sourceInside: boolean,
  destinationInside: boolean,
): NetworkDirection {
  if (sourceInside && destinationInside) return 'internal';
  if (sourceInside) return 'outbound';
  if (destinationInside) return 'inbound';
  return 'external';
}

export interface BaseEventOptions {
  action: EventAction;
  kind: EventKind;
  category: EventCategory[];
  type: EventType[];
  /** Packet or socket time of the event, epoch milliseconds. */
  ts: number;
  observer: EcsObserver;
  /** Defaults per action: "tollgate.flow", "tollgate.dicom", "tollgate.alert" and so on. */
  dataset?: string;
  severity?: number;
  /** Start and end of the flow or window the event covers, epoch milliseconds. */
  start?: number;
  end?: number;
  rule?: { id: string; name: string };
}

const DATASET_OF_ACTION: Record<EventAction, string> = {
  'network-flow': 'tollgate.flow',
  'dicom-association': 'tollgate.dicom',
  'http-request': 'tollgate.http',
  'tls-client-hello': 'tollgate.tls',
  'egress-meter': 'tollgate.meter',
  'egress-threshold-exceeded': 'tollgate.alert',
  'bulk-dicom-egress': 'tollgate.alert',
  'bulk-file-copy': 'tollgate.alert',
  'cloud-storage-transfer': 'tollgate.alert',
  'destination-not-allowed': 'tollgate.alert',
  'connection-blocked': 'tollgate.alert',
  'transfer-cut': 'tollgate.alert',
  'smb-file-access': 'tollgate.smb',
  'smb-session': 'tollgate.smb',
};

/** Builds the fields every event has: time, a fresh id, event.* and observer.*. */
export function buildBaseEvent(options: BaseEventOptions): EcsEvent {
  const event: EcsEvent = {
    '@timestamp': isoTime(options.ts),
    event: {
      id: newEventId(options.ts),
      kind: options.kind,
      category: options.category,
      type: options.type,
      action: options.action,
      dataset: options.dataset ?? DATASET_OF_ACTION[options.action],
      module: 'tollgate',
    },
    observer: options.observer,
  };
  if (options.severity !== undefined) event.event.severity = options.severity;
  if (options.start !== undefined) event.event.start = isoTime(options.start);
  if (options.end !== undefined) event.event.end = isoTime(options.end);
  if (options.start !== undefined && options.end !== undefined) {
    // ECS event.duration is in nanoseconds.
    event.event.duration = Math.max(0, Math.round((options.end - options.start) * 1e6));
  }
  if (options.rule) event.rule = { id: options.rule.id, name: options.rule.name };
  return event;
}

/** Builds an alert event for a rule, with event.kind 'alert' and the rule's severity. */
export function buildAlertEvent(
  options: Omit<BaseEventOptions, 'kind' | 'rule' | 'severity'> & {
    rule: { id: string; name: string; severity: number };
    verdict: Verdict;
  },
): EcsEvent {
  const event = buildBaseEvent({
    ...options,
    kind: 'alert',
    severity: options.rule.severity,
    rule: options.rule,
  });
  event.tollgate = { verdict: options.verdict };
  return event;
}
