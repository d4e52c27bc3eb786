// Builds the ECS events the engine emits about flows. Field meanings are documented in
// docs/events.md; source.* is the initiator and destination.* the responder, as ECS defines
// them, and tollgate.remote.* is always the endpoint outside the protected networks.

import {
  buildBaseEvent,
  networkDirection as directionOf,
  type EventAction,
  type EventCategory,
  type EventType,
} from '../events/ecs.js';
import type { EngineFlow } from './flow.js';
import type { Millis } from './types.js';

export type EcsEvent = Record<string, unknown> & { '@timestamp': string };

export interface ObserverInfo {
  hostname: string;
  version: string;
  type: 'ids' | 'proxy';
}

export interface EventHeader {
  kind: 'event' | 'alert';
  category: EventCategory[];
  type: EventType[];
  action: EventAction;
  dataset: string;
  severity?: number;
}

/** Builds the fields every event has: time, id, classification and the observer. */
export function baseEvent(ts: Millis, header: EventHeader, observer: ObserverInfo): EcsEvent {
  const options: Parameters<typeof buildBaseEvent>[0] = {
    action: header.action,
    kind: header.kind,
    category: header.category,
    type: header.type,
    dataset: header.dataset,
    ts,
    observer: { vendor: 'tollgate', product: 'tollgate', ...observer },
  };
  if (header.severity !== undefined) options.severity = header.severity;
  return buildBaseEvent(options) as unknown as EcsEvent;
}

/** ECS network.direction from the protected networks' point of view. */
export function networkDirection(flow: EngineFlow): string {
  if (flow.category === 'unrelated') return 'external';
  return directionOf(
    flow.category === 'internal' || flow.insideSide === 0,
    flow.category === 'internal' || flow.insideSide === 1,
  );
}

/** Builds the endpoint and flow fields of every flow-related event. */
export function flowFields(
  flow: EngineFlow,
  communityId: string | undefined,
): Record<string, unknown> {
  const destination: Record<string, unknown> = {
    ip: flow.responder.ip,
    port: flow.responder.port,
  };
  if (flow.insideSide === 0 && flow.remoteName !== undefined) destination.domain = flow.remoteName;

  const remote: Record<string, unknown> = { ip: flow.remote.ip, port: flow.remote.port };
  if (flow.remoteName !== undefined) remote.domain = flow.remoteName;

  const fields: Record<string, unknown> = {
    source: { ip: flow.initiator.ip, port: flow.initiator.port },
    destination,
    network: {
      transport: 'tcp',
      protocol: flow.protocol ?? 'unknown',
      direction: networkDirection(flow),
      community_id: communityId,
    },
    tollgate: {
      flow: { id: flow.id },
      remote,
      egress: {
        bytes: flow.egressBytes,
        estimated_missing_bytes: flow.egressMissingBytes,
      },
    },
  };

  const user = flow.meterUser;
  if (user !== undefined) fields.user = userFields(user);
  return fields;
}

/** ECS user fields from "DOMAIN\user", as the SMB events write them, or a bare name. */
export function userFields(user: string): { name: string; domain?: string } {
  const backslash = user.lastIndexOf('\\');
  if (backslash <= 0) return { name: user };
  return { name: user.slice(backslash + 1), domain: user.slice(0, backslash) };
}

/** Merges `extra` into `event`, one level deep for the top-level objects both define. */
export function mergeFields<T extends Record<string, unknown>>(
  event: T,
  extra: Record<string, unknown>,
): T {
  const target: Record<string, unknown> = event;
  for (const [key, value] of Object.entries(extra)) {
    const existing = target[key];
    target[key] =
      isPlainObject(existing) && isPlainObject(value) ? deepMerge(existing, value) : value;
  }
  return event;
}

function deepMerge(
  target: Record<string, unknown>,
  source: Record<string, unknown>,
): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...target };
  for (const [key, value] of Object.entries(source)) {
    const existing = merged[key];
    merged[key] =
      isPlainObject(existing) && isPlainObject(value) ? deepMerge(existing, value) : value;
  }
  return merged;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
