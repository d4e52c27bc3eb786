// The engine: flows from any front-end, their analyzers, the meters, the policy and the events.

import { LRUCache } from 'lru-cache';
import type { Verdict as EcsVerdict, EventAction } from '../events/ecs.js';
import type { MeterEntry, MeterKeyKind, MeterLabels, MeterStore } from '../meter/store.js';
import { type HourTotals, hourStart } from '../meter/window.js';
import type { CidrSet } from '../policy/cidr.js';
import type { CompiledRule, FlowFacts, Policy } from '../policy/model.js';
import { communityIdFor } from './community.js';
import type { ProtocolModule } from './dispatch.js';
import { EngineFlow, type FlowCategory, type FlowHost } from './flow.js';
import {
  baseEvent,
  type EcsEvent,
  type EventHeader,
  flowFields,
  mergeFields,
  type ObserverInfo,
} from './flow-events.js';
import type { FlowEndReason, FlowHandle, FlowOpenOptions, Verdict } from './front-end.js';
import {
  BaseMeters,
  DEFAULT_METER_LIMITS,
  type MeterCrossing,
  meterKey,
  RuleMeter,
} from './meters.js';
import { observationEvent } from './observation-events.js';
import { activeRules, destinationVerdicts, isMeterRule } from './rules.js';
import { type EngineStats, newEngineStats } from './stats.js';
import type { Millis, Observation, Side } from './types.js';

export interface EventSinkLike {
  write(event: object): void;
}

export interface PseudonymizerLike {
  value(kind: 'patient-id' | 'patient-name' | 'file-path', clear: string): string;
}

export interface EngineLimits {
  maxMeterKeys: number;
  /** Egress bytes a flow gathers before they are added to the meters. */
  meterFlushBytes: number;
  /** Packet-time interval after which a flow's gathered egress bytes are added anyway. */
  meterFlushMs: number;
  /** C-MOVE requests remembered for linking the associations they cause. */
  maxPendingMoves: number;
  /** How long a C-MOVE request may wait for the association it causes. */
  moveLinkMs: number;
  /** Closed remote-hour totals kept for the summary. */
  maxHourRecords: number;
}

export const DEFAULT_ENGINE_LIMITS: EngineLimits = {
  maxMeterKeys: DEFAULT_METER_LIMITS.maxKeys,
  meterFlushBytes: 256 * 1024,
  meterFlushMs: 1000,
  maxPendingMoves: 10_000,
  moveLinkMs: 10 * 60_000,
  maxHourRecords: 100_000,
};

export interface EngineOptions {
  policy: Policy;
  protectedNetworks: CidrSet;
  sink: EventSinkLike;
  pseudonymizer: PseudonymizerLike;
  mode: 'span' | 'inline';
  protocols: readonly ProtocolModule[];
  observer: Omit<ObserverInfo, 'type'>;
  limits?: Partial<EngineLimits>;
}

/** One meter entry as the admin API reports it: the current UTC hour and the rolling window. */
export interface MeterSnapshot {
  key: string;
  labels: MeterLabels;
  hour: { start: Millis; bytes: number; instances: number; files: number };
  rolling: { bytes: number; instances: number; files: number };
}

/** A closed hour bucket of one remote, kept for the end-of-run summary. */
export interface RemoteHourRecord {
  remoteIp: string;
  remoteDomain: string | undefined;
  totals: HourTotals;
}

interface PendingMove {
  requesterIp: string;
  requesterPort: number;
  callingAeTitle: string;
  flowId: string;
  ts: Millis;
}

interface FlowRuleState {
  version: number;
  rules: CompiledRule[];
  meterRules: RuleMeter[];
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

export class Engine implements FlowHost {
  readonly stats: EngineStats = newEngineStats();
  readonly hourRecords: RemoteHourRecord[] = [];
  readonly alerts: AlertRecord[] = [];
  readonly protocols: readonly ProtocolModule[];

  private readonly limits: EngineLimits;
  private readonly observer: ObserverInfo;
  private readonly flows = new Set<EngineFlow>();
  private readonly meters: BaseMeters;
  private readonly ruleMeters = new Map<string, RuleMeter>();
  private readonly ruleStates = new WeakMap<EngineFlow, FlowRuleState>();
  private readonly pendingMoves: LRUCache<string, PendingMove>;
  private readonly moveRequesters = new WeakMap<EngineFlow, PendingMove>();
  private flowCounter = 0;
  private clockHour = -1;
  private policy: Policy;

  constructor(private readonly options: EngineOptions) {
    this.limits = { ...DEFAULT_ENGINE_LIMITS, ...options.limits };
    this.protocols = options.protocols;
    this.policy = options.policy;
    this.observer = { ...options.observer, type: options.mode === 'span' ? 'ids' : 'proxy' };
    this.meters = new BaseMeters({ maxKeys: this.limits.maxMeterKeys }, (entry, totals, evicted) =>
      this.emitMeterEvent(entry, totals, evicted),
    );
    this.pendingMoves = new LRUCache({ max: this.limits.maxPendingMoves });
    this.installRuleMeters(options.policy);
  }

  /** Replaces the policy; flows re-evaluate their rules on their next event. */
  setPolicy(policy: Policy): void {
    this.policy = policy;
    this.installRuleMeters(policy);
    for (const flow of this.flows) flow.factsVersion++;
  }

  get meterEvictions(): number {
    let evictions = this.meters.evictions;
    for (const meter of this.ruleMeters.values()) evictions += meter.store.evictions;
    return evictions;
  }

  /** Flows opened and not yet ended, of every category. */
  get openFlowCount(): number {
    return this.flows.size;
  }

  /**
   * Returns the `n` entries of a base meter store with the most egress bytes in the rolling
   * window at `now`, and how many entries the store has. Each window is first advanced to `now`
   * (as the next count would do) so that minutes older than 60 drop out; the hour totals are
   * zero for an entry whose bucket belongs to an earlier hour. Sorting is O(k log k) over the
   * store's k entries, at most maxMeterKeys.
   */
  topMeters(per: MeterKeyKind, n: number, now: Millis): { total: number; top: MeterSnapshot[] } {
    const store =
      per === 'remote'
        ? this.meters.remote
        : per === 'source-remote'
          ? this.meters.sourceRemote
          : this.meters.user;
    const currentHour = hourStart(now);
    const snapshots: MeterSnapshot[] = [];
    for (const entry of store.entries()) {
      const window = entry.window;
      window.advance(now);
      const hour = window.hour;
      const inHour = hour.start === currentHour;
      snapshots.push({
        key: entry.key,
        labels: { ...entry.labels },
        hour: {
          start: currentHour,
          bytes: inHour ? hour.bytes : 0,
          instances: inHour ? hour.instances : 0,
          files: inHour ? hour.files : 0,
        },
        rolling: {
          bytes: window.rollingBytes,
          instances: window.rollingInstances,
          files: window.rollingFiles,
        },
      });
    }
    snapshots.sort(
      (a, b) =>
        b.rolling.bytes - a.rolling.bytes ||
        b.hour.bytes - a.hour.bytes ||
        (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
    );
    return { total: store.size, top: snapshots.slice(0, n) };
  }

  openFlow(options: FlowOpenOptions): FlowHandle & EngineFlow {
    this.tick(options.ts);
    const initiatorInside = this.options.protectedNetworks.has(options.initiator.ip);
    const responderInside = this.options.protectedNetworks.has(options.responder.ip);

    let insideSide: Side | null = null;
    let category: FlowCategory = 'unrelated';
    if (initiatorInside && responderInside) category = 'internal';
    else if (initiatorInside || responderInside) {
      category = 'egress';
      insideSide = initiatorInside ? 0 : 1;
    }

    this.flowCounter++;
    const id = `F${options.ts.toFixed(0)}-${this.flowCounter}`;
    const flow = new EngineFlow(this, id, options, insideSide, category);
    this.flows.add(flow);
    this.stats.flows[category]++;

    if (category === 'egress' && this.options.mode === 'inline')
      this.evaluateDestination(flow, options.ts);
    return flow;
  }

  /**
   * Returns the block verdict the destination rules give a connection with these facts before
   * any byte passes, or null. Inline front-ends call it for a name and for every address the
   * name resolves to, before they connect. Dry-run rules never refuse.
   */
  destinationRefusal(facts: FlowFacts): Verdict | null {
    const rules = activeRules(this.policy.rules, facts);
    for (const { rule, eventAction } of destinationVerdicts(rules, facts)) {
      if (rule.action !== 'block' || rule.dryRun) continue;
      return { action: 'block', ruleId: rule.id, ruleName: rule.name, eventAction, dryRun: false };
    }
    return null;
  }

  /**
   * Emits an event about what an inline front-end did to a flow: `connection-blocked` when it
   * refused the connection, `transfer-cut` when it cut it mid-stream. `fields` are merged in.
   */
  emitEnforcement(
    flow: EngineFlow,
    ts: Millis,
    action: 'connection-blocked' | 'transfer-cut',
    fields: Record<string, unknown>,
  ): void {
    this.emitFlowEvent(
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

  /** Moves the engine clock; closes the meters' hour buckets when a new UTC hour starts. */
  tick(ts: Millis): void {
    const hour = hourStart(ts);
    if (hour <= this.clockHour) return;
    const first = this.clockHour < 0;
    this.clockHour = hour;
    if (first) return;

    for (const flow of this.flows) if (flow.pendingEgress > 0) this.flushMeters(flow, flow.lastTs);
    this.meters.closeHoursBefore(hour);
  }

  /** Ends every open flow and reports every open meter bucket, as when the input ends. */
  finish(ts: Millis): void {
    for (const flow of [...this.flows]) flow.end(ts, 'input-end');
    this.meters.remote.closeAll();
  }

  // FlowHost

  onEgress(flow: EngineFlow, ts: Millis): void {
    if (ts >= this.clockHour + 3_600_000) this.tick(ts);
    if (!flow.egressEvaluated) {
      flow.egressEvaluated = true;
      this.evaluateDestination(flow, ts);
    }
    if (
      flow.pendingEgress >= this.limits.meterFlushBytes ||
      ts - flow.lastMeterFlush >= this.limits.meterFlushMs
    ) {
      this.flushMeters(flow, ts);
    }
  }

  onGap(flow: EngineFlow, side: Side, length: number, _ts: Millis): void {
    if (side === flow.insideSide) this.stats.bytes.egressMissing += length;
  }

  onAnomaly(_flow: EngineFlow, name: string, _ts: Millis): void {
    this.stats.anomalies.set(name, (this.stats.anomalies.get(name) ?? 0) + 1);
  }

  onObservation(flow: EngineFlow, observation: Observation, ts: Millis): void {
    this.applyObservation(flow, observation, ts);
    const event = observationEvent(observation, {
      flow,
      pseudonymizer: this.options.pseudonymizer,
      moveRequester: this.moveRequesters.get(flow),
    });
    if (event !== null) this.emitFlowEvent(flow, ts, event.header, event.fields);
  }

  onEnd(flow: EngineFlow, ts: Millis, reason: FlowEndReason): void {
    this.flows.delete(flow);
    this.countFlowBytes(flow);
    if (flow.category !== 'egress') return;

    if (flow.pendingEgress > 0) this.flushMeters(flow, ts);
    this.emitFlowEvent(
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

  // Facts and rules

  private applyObservation(flow: EngineFlow, observation: Observation, ts: Millis): void {
    switch (observation.kind) {
      case 'remote-name':
        if (flow.remoteNameSource !== 'sni' || observation.source === 'sni') {
          flow.remoteName = observation.name.toLowerCase();
          flow.remoteNameSource = observation.source;
          flow.factsVersion++;
        }
        break;
      case 'dicom-association-request':
        this.noteAssociation(flow, observation, ts);
        break;
      case 'dicom-instance':
        if (observation.senderSide === flow.insideSide) {
          this.flushMeters(flow, ts);
          this.addToMeters(flow, ts, { ...NO_COUNTS, instances: 1 });
        }
        break;
      case 'dicom-move-request':
        this.pendingMoves.set(`${flow.inside.ip}|${observation.moveDestination}`, {
          requesterIp: flow.remote.ip,
          requesterPort: flow.remote.port,
          callingAeTitle: observation.callingAeTitle,
          flowId: flow.id,
          ts,
        });
        break;
      case 'http-request':
        if (observation.userAgent !== undefined && flow.userAgent === undefined) {
          flow.userAgent = observation.userAgent;
          flow.factsVersion++;
        }
        break;
      case 'smb-file-data':
        this.noteShare(flow, observation.share);
        if (observation.senderSide === flow.insideSide) {
          this.addToMeters(flow, ts, { ...NO_COUNTS, fileBytes: observation.bytes });
        }
        break;
      case 'smb-user':
        flow.users.add(
          observation.domain ? `${observation.domain}\\${observation.user}` : observation.user,
        );
        flow.factsVersion++;
        break;
      case 'smb-file-access':
        this.noteShare(flow, observation.access.share);
        if (
          this.isFileEgress(flow, observation.access.bytesRead, observation.access.bytesWritten)
        ) {
          this.flushMeters(flow, ts);
          this.addToMeters(flow, ts, { ...NO_COUNTS, files: 1 });
        }
        break;
      default:
        break;
    }

    if (
      flow.factsVersion !== flow.rulesVersion &&
      (flow.egressEvaluated || this.options.mode === 'inline')
    ) {
      this.evaluateDestination(flow, ts);
    }
  }

  private noteAssociation(
    flow: EngineFlow,
    request: Extract<Observation, { kind: 'dicom-association-request' }>,
    ts: Millis,
  ): void {
    flow.aeTitles.add(request.callingAeTitle);
    flow.aeTitles.add(request.calledAeTitle);
    const remoteAe =
      request.requestorSide === flow.insideSide ? request.calledAeTitle : request.callingAeTitle;
    if (remoteAe !== '' && flow.users.size === 0) flow.users.add(remoteAe);
    flow.factsVersion++;

    // An association the archive opens to a Move Destination was caused by a C-MOVE request.
    if (request.requestorSide !== flow.insideSide) return;
    const key = `${flow.inside.ip}|${request.calledAeTitle}`;
    const move = this.pendingMoves.get(key);
    if (move !== undefined && ts - move.ts <= this.limits.moveLinkMs) {
      this.moveRequesters.set(flow, move);
    }
  }

  private noteShare(flow: EngineFlow, share: string): void {
    if (share === '' || flow.shares.has(share)) return;
    flow.shares.add(share);
    flow.factsVersion++;
  }

  private isFileEgress(flow: EngineFlow, bytesRead: number, bytesWritten: number): boolean {
    // READ data flows from the server (responder), WRITE data from the client (initiator).
    return flow.insideSide === 1 ? bytesRead > 0 : flow.insideSide === 0 && bytesWritten > 0;
  }

  private rulesFor(flow: EngineFlow, ts: Millis): FlowRuleState {
    let state = this.ruleStates.get(flow);
    if (state === undefined || state.version !== flow.factsVersion) {
      const rules = activeRules(this.policy.rules, flow.facts(ts));
      const meterRules: RuleMeter[] = [];
      for (const rule of rules) {
        const meter = isMeterRule(rule) ? this.ruleMeters.get(rule.id) : undefined;
        if (meter !== undefined) meterRules.push(meter);
      }
      state = { version: flow.factsVersion, rules, meterRules };
      this.ruleStates.set(flow, state);
    }
    return state;
  }

  private evaluateDestination(flow: EngineFlow, ts: Millis): void {
    flow.rulesVersion = flow.factsVersion;
    const { rules } = this.rulesFor(flow, ts);
    for (const { rule, eventAction } of destinationVerdicts(rules, flow.facts(ts))) {
      if (flow.firedRules.has(rule.id)) continue;
      flow.firedRules.add(rule.id);
      this.raiseAlert(flow, ts, rule, eventAction, {});
    }
  }

  private installRuleMeters(policy: Policy): void {
    for (const rule of policy.rules) {
      if (!isMeterRule(rule) || !rule.enabled) continue;
      const existing = this.ruleMeters.get(rule.id);
      if (existing !== undefined && existing.rule === rule) continue;
      this.ruleMeters.set(rule.id, new RuleMeter(rule, this.limits.maxMeterKeys));
    }
  }

  // Meters

  private flushMeters(flow: EngineFlow, ts: Millis): void {
    const bytes = flow.pendingEgress;
    flow.pendingEgress = 0;
    flow.lastMeterFlush = ts;
    if (bytes > 0) this.addToMeters(flow, ts, { ...NO_COUNTS, bytes });
  }

  /** Adds counts to the base meters and to the meters of the flow's active rules. */
  private addToMeters(flow: EngineFlow, ts: Millis, counts: MeterCounts): void {
    const { bytes, instances, files, fileBytes } = counts;
    this.stats.bytes.egress += bytes;
    const labels: MeterLabels = {
      remoteIp: flow.remote.ip,
      sourceIp: flow.inside.ip,
    };
    if (flow.remoteName !== undefined) labels.remoteDomain = flow.remoteName;
    const user = flow.meterUser;
    if (user !== undefined) labels.user = user;

    for (const store of [this.meters.remote, this.meters.sourceRemote, this.meters.user]) {
      const entry = this.meterEntry(flow, store, store.kind, labels, ts);
      if (entry !== null) store.add(entry, ts, bytes, instances, files);
    }

    const { meterRules } = this.rulesFor(flow, ts);
    for (const meter of meterRules) {
      const kind = meter.rule.kind;
      // A bulk-copy meter's bytes are SMB file data, not all the flow's egress.
      const ruleBytes = kind === 'bulk-copy' ? fileBytes : bytes;
      const relevant =
        kind === 'bulk-dicom' ? instances : kind === 'bulk-copy' ? files + fileBytes : bytes;
      if (relevant === 0) continue;
      const entry = this.meterEntry(flow, meter, meter.store.kind, labels, ts);
      if (entry === null) continue;
      meter.store.add(entry, ts, ruleBytes, instances, files);

      const { crossing, over } = meter.check(entry);
      if (crossing !== null) this.raiseMeterAlert(flow, ts, crossing);
      if (over && meter.rule.action === 'block')
        this.maybeBlock(flow, meter.rule, crossingAction(meter.rule));
      if (over && meter.rule.action === 'throttle')
        this.maybeThrottle(flow, meter.rule, crossingAction(meter.rule));
    }
  }

  /** The flow's entry in a store (a base store or a rule's), looked up once and cached. */
  private meterEntry(
    flow: EngineFlow,
    owner: MeterStore | RuleMeter,
    per: MeterKeyKind,
    labels: MeterLabels,
    ts: Millis,
  ): MeterEntry | null {
    const key = meterKey(per, labels);
    if (key === null) return null;
    const cached = flow.meterEntries.get(owner);
    if (cached !== undefined && cached.live && cached.key === key) {
      if (labels.remoteDomain !== undefined && cached.labels.remoteDomain === undefined) {
        cached.labels.remoteDomain = labels.remoteDomain;
      }
      return cached;
    }
    const store = owner instanceof RuleMeter ? owner.store : owner;
    const entry = store.entry(key, ts, labels);
    flow.meterEntries.set(owner, entry);
    return entry;
  }

  // Events

  private raiseMeterAlert(flow: EngineFlow, ts: Millis, crossing: MeterCrossing): void {
    this.raiseAlert(flow, ts, crossing.rule, crossingAction(crossing.rule), {
      tollgate: {
        meter: {
          per: crossing.entry.kind,
          key: crossing.entry.key,
          window: crossing.window,
          start: new Date(
            crossing.window === 'hour' ? crossing.entry.window.hour.start : ts - 3_600_000,
          ).toISOString(),
          measure: crossing.measure,
          [crossing.measure]: crossing.value,
          limit: crossing.limit,
        },
      },
    });
  }

  private raiseAlert(
    flow: EngineFlow,
    ts: Millis,
    rule: CompiledRule,
    eventAction: EventAction,
    extra: Record<string, unknown>,
  ): void {
    const enforced = rule.action === 'block' && !rule.dryRun;
    const wouldOnly = this.options.mode === 'span' || rule.dryRun;
    let verdict: EcsVerdict = 'alert';
    if (rule.action === 'block') verdict = wouldOnly ? 'would-block' : 'block';
    else if (rule.action === 'throttle') verdict = wouldOnly ? 'would-throttle' : 'throttle';
    this.stats.countAlert(rule.id, rule.name);
    if (this.alerts.length < MAX_LISTED_ALERTS) {
      this.alerts.push({
        ts,
        action: eventAction,
        ruleId: rule.id,
        verdict,
        remoteIp: flow.remote.ip,
        remoteDomain: flow.remoteName,
        user: flow.meterUser,
      });
    }
    this.emitFlowEvent(
      flow,
      ts,
      {
        kind: 'alert',
        category: ['network', 'intrusion_detection'],
        type:
          enforced && this.options.mode === 'inline'
            ? ['connection', 'denied']
            : ['connection', 'info'],
        action: eventAction,
        dataset: 'tollgate.alert',
        severity: rule.severity,
      },
      mergeFields(
        {
          '@timestamp': '',
          rule: { id: rule.id, name: rule.name, ruleset: this.policy.name },
          tollgate: { verdict, dry_run: rule.dryRun },
        },
        extra,
      ),
    );
    if (rule.action === 'block') this.maybeBlock(flow, rule, eventAction);
    if (rule.action === 'throttle') this.maybeThrottle(flow, rule, eventAction);
  }

  private maybeThrottle(flow: EngineFlow, rule: CompiledRule, eventAction: EventAction): void {
    if (this.options.mode !== 'inline' || rule.dryRun || rule.rateBytesPerSecond === undefined)
      return;
    flow.throttle({
      action: 'throttle',
      ruleId: rule.id,
      ruleName: rule.name,
      eventAction,
      dryRun: false,
      rateBytesPerSecond: rule.rateBytesPerSecond,
    });
  }

  private maybeBlock(flow: EngineFlow, rule: CompiledRule, eventAction: EventAction): void {
    if (rule.action !== 'block' || flow.blocked !== null) return;
    const verdict: Verdict = {
      action: 'block',
      ruleId: rule.id,
      ruleName: rule.name,
      eventAction,
      dryRun: rule.dryRun,
    };
    if (this.options.mode === 'inline' && !rule.dryRun) flow.block(verdict);
  }

  private emitFlowEvent(
    flow: EngineFlow,
    ts: Millis,
    header: EventHeader,
    fields: Record<string, unknown>,
  ): void {
    const event = baseEvent(ts, header, this.observer);
    mergeFields(event, flowFields(flow, communityIdFor(flow)));
    delete fields['@timestamp'];
    mergeFields(event, fields);
    this.write(event, header.action);
  }

  private emitMeterEvent(entry: MeterEntry, totals: HourTotals, evicted: boolean): void {
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
    if (this.hourRecords.length >= this.limits.maxHourRecords) {
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
    this.options.sink.write(event);
  }

  private countFlowBytes(flow: EngineFlow): void {
    const total = flow.bytes[0] + flow.bytes[1];
    if (flow.category === 'internal') this.stats.bytes.internal += total;
    else if (flow.category === 'unrelated') this.stats.bytes.unrelated += total;
    else if (flow.remoteSide !== null) this.stats.bytes.ingress += flow.bytes[flow.remoteSide];
  }
}

/** What one step adds to the meters. */
interface MeterCounts {
  /** Egress payload bytes. */
  bytes: number;
  instances: number;
  files: number;
  /** SMB file data bytes that left, for bulk-copy rules. */
  fileBytes: number;
}

const NO_COUNTS: MeterCounts = { bytes: 0, instances: 0, files: 0, fileBytes: 0 };

function crossingAction(rule: CompiledRule): EventAction {
  if (rule.kind === 'bulk-dicom') return 'bulk-dicom-egress';
  if (rule.kind === 'bulk-copy') return 'bulk-file-copy';
  return 'egress-threshold-exceeded';
}
