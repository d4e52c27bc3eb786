// Writes the engine's events: flow events, alerts, hourly meters and enforcement records. It
// also keeps what the end-of-run summary lists (closed remote hours, the first alerts).

import type { Verdict as EcsVerdict, EventAction } from '../events/ecs.js';
import type { MeterEntry } from '../meter/store.js';
import type { HourTotals } from '../meter/window.js';
import type { CompiledRule } from '../policy/model.js';
import { communityIdFor } from './community.js';
import type { EngineFlow } from './flow.js';
import {
  baseEvent,
  type EcsEvent,
  type EventHeader,
  flowFields,
  mergeFields,
  type ObserverInfo,
} from './flow-events.js';
import type { FlowEndReason } from './front-end.js';
import type { EngineStats } from './stats.js';
import type { Millis } from './types.js';

export interface EventSinkLike {
  write(event: object): void;
}

/** Alerts listed in the end-of-run summary; the counts by rule stay exact. */
const MAX_LISTED_ALERTS = 50;

export interface AlertRecord {
  ts: Millis;
  action: string;
  ruleId: string;
  verdict: string;
  remoteIp: string;
  remoteDomain: string | undefined;
  user: string | undefined;
}

/** A closed hour bucket of one remote, kept for the end-of-run summary. */
export interface RemoteHourRecord {
  remoteIp: string;
  remoteDomain: string | undefined;
  totals: HourTotals;
}

export class EventWriter {
  readonly hourRecords: RemoteHourRecord[] = [];
  readonly alerts: AlertRecord[] = [];

  constructor(
    private readonly sink: EventSinkLike,
    private readonly observer: ObserverInfo,
    private readonly stats: EngineStats,
    private readonly maxHourRecords: number,
  ) {}

  /** Writes an event about a flow: the header, the flow fields, then `fields`. */
  flowEvent(
    flow: EngineFlow,
    ts: Millis,
    header: EventHeader,
    fields: Record<string, unknown>,
  ): void {
    const event = baseEvent(ts, header, this.observer);
    mergeFields(event, flowFields(flow, communityIdFor(flow)));
    mergeFields(event, fields);
    this.write(event, header.action);
  }

  /** Writes the network-flow event of a flow that ended. */
  flowEnd(flow: EngineFlow, ts: Millis, reason: FlowEndReason): void {
    this.flowEvent(
      flow,
      ts,
      {
        kind: 'event',
        category: ['network'],
        type: ['connection', 'end'],
        action: 'network-flow',
        dataset: 'tollgate.flow',
      },
      {
        event: {
          start: new Date(Math.floor(flow.startTs)).toISOString(),
          end: new Date(Math.floor(ts)).toISOString(),
          duration: Math.round((ts - flow.startTs) * 1e6),
          reason,
        },
        source: { bytes: flow.bytes[0] },
        destination: { bytes: flow.bytes[1] },
        tollgate: {
          flow: { mid_stream: flow.midStream, end_reason: reason },
          ingress: { bytes: flow.remoteSide === null ? 0 : flow.bytes[flow.remoteSide] },
          anomalies: Object.fromEntries(flow.anomalies),
        },
      },
    );
  }

  /** Writes a rule's alert about a flow and counts it for the summary. */
  alert(
    flow: EngineFlow,
    ts: Millis,
    alert: {
      rule: CompiledRule;
      ruleset: string;
      action: EventAction;
      verdict: EcsVerdict;
      denied: boolean;
      extra: Record<string, unknown>;
    },
  ): void {
    const { rule, verdict } = alert;
    this.stats.countAlert(rule.id, rule.name);
    if (this.alerts.length < MAX_LISTED_ALERTS) {
      this.alerts.push({
        ts,
        action: alert.action,
        ruleId: rule.id,
        verdict,
        remoteIp: flow.remote.ip,
        remoteDomain: flow.remoteName,
        user: flow.meterUser,
      });
    }

    const fields: Record<string, unknown> = {
      rule: { id: rule.id, name: rule.name, ruleset: alert.ruleset },
      tollgate: { verdict, dry_run: rule.dryRun },
    };
    mergeFields(fields, alert.extra);
    this.flowEvent(
      flow,
      ts,
      {
        kind: 'alert',
        category: ['network', 'intrusion_detection'],
        type: alert.denied ? ['connection', 'denied'] : ['connection', 'info'],
        action: alert.action,
        dataset: 'tollgate.alert',
        severity: rule.severity,
      },
      fields,
    );
  }

  /** Writes what an inline front-end did to a flow: refused it or cut it. */
  enforcement(
    flow: EngineFlow,
    ts: Millis,
    action: 'connection-blocked' | 'transfer-cut',
    fields: Record<string, unknown>,
  ): void {
    this.flowEvent(
      flow,
      ts,
      {
        kind: 'event',
        category: ['network'],
        type: ['connection', 'denied'],
        action,
        dataset: 'tollgate.enforcement',
      },
      fields,
    );
  }

  /** Writes the egress-meter event of one remote's closed hour. */
  meterHour(entry: MeterEntry, totals: HourTotals, evicted: boolean): void {
    this.recordHour(entry, totals);
    const event = baseEvent(
      totals.lastTs,
      {
        kind: 'event',
        category: ['network'],
        type: ['info'],
        action: 'egress-meter',
        dataset: 'tollgate.meter',
      },
      this.observer,
    );
    const remote: Record<string, unknown> = { ip: entry.labels.remoteIp };
    if (entry.labels.remoteDomain !== undefined) remote.domain = entry.labels.remoteDomain;
    mergeFields(event, {
      event: {
        start: new Date(totals.start).toISOString(),
        end: new Date(totals.start + 3_600_000).toISOString(),
      },
      destination: { ip: entry.labels.remoteIp },
      tollgate: {
        remote,
        egress: { bytes: totals.bytes },
        dicom: { instances: totals.instances },
        files: totals.files,
        meter: {
          per: 'remote',
          key: entry.key,
          window: 'hour',
          start: new Date(totals.start).toISOString(),
          evicted,
        },
      },
    });
    this.write(event, 'egress-meter');
  }

  private recordHour(entry: MeterEntry, totals: HourTotals): void {
    if (this.hourRecords.length >= this.maxHourRecords) {
      this.stats.hourRecordsDropped++;
      return;
    }
    this.hourRecords.push({
      remoteIp: entry.labels.remoteIp ?? entry.key,
      remoteDomain: entry.labels.remoteDomain,
      totals: { ...totals },
    });
  }

  private write(event: EcsEvent, action: string): void {
    this.stats.events.set(action, (this.stats.events.get(action) ?? 0) + 1);
    this.sink.write(event);
  }
}
