// The admin API's endpoints as functions from the request to a response body. The HTTP
// plumbing (authentication, routing, limits) is in server.ts.

import type { Listener } from '../config/load.js';
import type { Engine } from '../engine/engine.js';
import type { MeterKeyKind } from '../meter/store.js';
import type { Gateway } from '../proxy/gateway.js';
import type { PolicyReloadResult } from './reload.js';

/** A JSON response: status code and the value to serialize. */
export interface JsonResponse {
  status: number;
  body: unknown;
}

/** Entries returned by GET /meters when the query has no `top`. */
export const DEFAULT_METERS_TOP = 20;

/** Largest `top` GET /meters accepts. */
export const MAX_METERS_TOP = 1000;

const METER_KINDS: readonly MeterKeyKind[] = ['remote', 'source-remote', 'user'];

/** Maximum length of a query value quoted in an error message. */
const MAX_QUOTED_VALUE = 64;

export interface HealthInput {
  gateway: Gateway;
  listeners: readonly Listener[];
  version: string;
  startedAt: number;
  now: number;
}

/** GET /health: the gateway is up, since when, and where each listener is bound. */
export function health(input: HealthInput): JsonResponse {
  const types = new Map(input.listeners.map((listener) => [listener.name, listener.type]));
  return {
    status: 200,
    body: {
      status: 'ok',
      version: input.version,
      started_at: new Date(input.startedAt).toISOString(),
      uptime_seconds: Math.max(0, Math.round((input.now - input.startedAt) / 1000)),
      listeners: input.gateway.servers.map(({ name, address }) => ({
        name,
        type: types.get(name) ?? 'unknown',
        host: address.host,
        port: address.port,
      })),
      flows_open: input.gateway.engine.openFlowCount,
    },
  };
}

/**
 * GET /meters?per=remote&top=20: the meter entries with the most egress bytes in the rolling
 * 60-minute window, with their current UTC hour totals. `per` is remote, source-remote or user.
 */
export function meters(query: URLSearchParams, engine: Engine, now: number): JsonResponse {
  for (const name of query.keys()) {
    if (name !== 'per' && name !== 'top') {
      return badRequest(`unknown query parameter ${quoteValue(name)}; expected per or top`);
    }
  }

  const perValue = query.get('per') ?? 'remote';
  const per = METER_KINDS.find((kind) => kind === perValue);
  if (per === undefined) {
    return badRequest(
      `invalid per ${quoteValue(perValue)}; expected one of ${METER_KINDS.join(', ')}`,
    );
  }

  const topValue = query.get('top');
  let top = DEFAULT_METERS_TOP;
  if (topValue !== null) {
    top = /^\d{1,7}$/.test(topValue) ? Number(topValue) : Number.NaN;
    if (!(top >= 1 && top <= MAX_METERS_TOP)) {
      return badRequest(
        `invalid top ${quoteValue(topValue)}; expected a whole number from 1 to ${MAX_METERS_TOP}`,
      );
    }
  }

  const { total, top: entries } = engine.topMeters(per, top, now);
  return {
    status: 200,
    body: {
      per,
      top,
      total,
      now: new Date(now).toISOString(),
      entries: entries.map((entry) => ({
        key: entry.key,
        remote_ip: entry.labels.remoteIp,
        remote_domain: entry.labels.remoteDomain,
        source_ip: entry.labels.sourceIp,
        user: entry.labels.user,
        hour: {
          start: new Date(entry.hour.start).toISOString(),
          bytes: entry.hour.bytes,
          instances: entry.hour.instances,
          files: entry.hour.files,
        },
        rolling: entry.rolling,
      })),
    },
  };
}

/** POST /reload: 200 with what is running now, or 422 with the validation errors. */
export function reload(run: () => PolicyReloadResult): JsonResponse {
  const result = run();
  if (result.ok) {
    return {
      status: 200,
      body: { status: 'reloaded', policy: result.source, name: result.name, rules: result.rules },
    };
  }
  return {
    status: 422,
    body: { status: 'invalid', message: 'the running policy stays', errors: result.errors },
  };
}

function badRequest(message: string): JsonResponse {
  return { status: 400, body: { error: message } };
}

function quoteValue(value: string): string {
  const truncated =
    value.length > MAX_QUOTED_VALUE ? `${value.slice(0, MAX_QUOTED_VALUE)}...` : value;
  return JSON.stringify(truncated);
}
