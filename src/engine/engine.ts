// The engine: flows from any front-end, their analyzers, the meters, the policy and the events.

import { isIP } from 'node:net';
import type { Verdict as EcsVerdict, EventAction } from '../events/ecs.js';
import type { PseudonymKind } from '../events/pseudonymize.js';
import type { MeterKeyKind, MeterLabels } from '../meter/store.js';
import { hourStart } from '../meter/window.js';
import type { CidrSet } from '../policy/cidr.js';
import type { CompiledRule, FlowFacts, Policy } from '../policy/model.js';
import type { ProtocolModule } from './dispatch.js';
import {
  type AlertRecord,
  type EventSinkLike,
  EventWriter,
  type RemoteHourRecord,
} from './event-writer.js';
import { EngineFlow, type FlowCategory, type FlowHost } from './flow.js';
import type { ObserverInfo } from './flow-events.js';
import type { FlowEndReason, FlowHandle, FlowOpenOptions, Verdict } from './front-end.js';
import { type MeterCounts, MeterFeed, type MeterSnapshot, NO_COUNTS } from './meter-feed.js';
import { DEFAULT_METER_LIMITS, type MeterCrossing, type RuleMeter } from './meters.js';
import { MoveLinks } from './move-links.js';
import { observationEvent } from './observation-events.js';
import { activeRules, destinationVerdicts, isMeterRule } from './rules.js';
import { type EngineStats, newEngineStats } from './stats.js';
import type { Millis, Observation, Side } from './types.js';

export type { AlertRecord, EventSinkLike, RemoteHourRecord } from './event-writer.js';
export type { MeterSnapshot } from './meter-feed.js';

export interface PseudonymizerLike {
  value(kind: PseudonymKind, clear: string): string;
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

interface FlowRuleState {
  version: number;
  rules: CompiledRule[];
  meterRules: RuleMeter[];
}

export class Engine implements FlowHost {
  readonly stats: EngineStats = newEngineStats();
  readonly protocols: readonly ProtocolModule[];

  private readonly limits: EngineLimits;
  private readonly events: EventWriter;
  private readonly flows = new Set<EngineFlow>();
  private readonly meters: MeterFeed;
  private readonly ruleStates = new WeakMap<EngineFlow, FlowRuleState>();
  private readonly moves: MoveLinks;
  private flowCounter = 0;
  private clockHour = -1;
  private policy: Policy;

  constructor(private readonly options: EngineOptions) {
    this.limits = { ...DEFAULT_ENGINE_LIMITS, ...options.limits };
    this.protocols = options.protocols;
    this.policy = options.policy;
    const observer: ObserverInfo = {
      ...options.observer,
      type: options.mode === 'span' ? 'ids' : 'proxy',
    };
    this.events = new EventWriter(options.sink, observer, this.stats, this.limits.maxHourRecords);
    this.meters = new MeterFeed(this.limits.maxMeterKeys, (entry, totals, evicted) =>
      this.events.meterHour(entry, totals, evicted),
    );
    this.moves = new MoveLinks(this.limits.maxPendingMoves, this.limits.moveLinkMs);
    this.meters.install(options.policy);
  }

  /** Closed remote-hour totals, for the end-of-run summary. */
  get hourRecords(): readonly RemoteHourRecord[] {
    return this.events.hourRecords;
  }

  /** The first alerts raised, for the end-of-run summary. */
  get alerts(): readonly AlertRecord[] {
    return this.events.alerts;
  }

  /** Replaces the policy; flows re-evaluate their rules on their next event. */
  setPolicy(policy: Policy): void {
    this.policy = policy;
    this.meters.install(policy);
    for (const flow of this.flows) flow.factsVersion++;
  }

  get meterEvictions(): number {
    return this.meters.evictions;
  }

  /** Flows opened and not yet ended, of every category. */
  get openFlowCount(): number {
    return this.flows.size;
  }

  /** Returns the `n` keys of a base meter store with the most egress in the rolling window. */
  topMeters(per: MeterKeyKind, n: number, now: Millis): { total: number; top: MeterSnapshot[] } {
    return this.meters.top(per, n, now);
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

    // A remote already over a block threshold gets no new connection until its meter drops.
    const labels: MeterLabels = { remoteIp: facts.remoteIp, sourceIp: facts.sourceIp };
    if (facts.users?.[0] !== undefined) labels.user = facts.users[0];
    for (const rule of rules) {
      if (rule.action !== 'block' || rule.dryRun || !isMeterRule(rule)) continue;
      const meter = this.meters.ruleMeter(rule.id);
      if (meter === undefined || !this.meters.exceeded(meter, labels, facts.ts)) continue;
      const eventAction = crossingAction(rule);
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
    this.events.enforcement(flow, ts, action, fields);
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
    this.meters.closeAll();
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
      moveRequester: this.moves.requesterOf(flow),
    });
    if (event !== null) this.events.flowEvent(flow, ts, event.header, event.fields);
  }

  onEnd(flow: EngineFlow, ts: Millis, reason: FlowEndReason): void {
    this.flows.delete(flow);
    this.countFlowBytes(flow);
    if (flow.category !== 'egress') return;

    if (flow.pendingEgress > 0) this.flushMeters(flow, ts);
    this.events.flowEnd(flow, ts, reason);
  }

  // Facts and rules

  private applyObservation(flow: EngineFlow, observation: Observation, ts: Millis): void {
    switch (observation.kind) {
      case 'remote-name':
        // An address written as a name (Host: 192.0.2.20) names nothing new.
        if (isIP(observation.name) !== 0) break;
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
        this.moves.request(flow, observation, ts);
        break;
      case 'http-request-head':
      case 'http-request':
        if (observation.userAgent !== undefined && flow.userAgent === undefined) {
          flow.userAgent = observation.userAgent;
          flow.factsVersion++;
        }
        break;
      case 'smb-file-data':
        this.noteShare(flow, observation.share);
        if (observation.senderSide === flow.insideSide) {
          // A file counts when its first bytes leave, so a files limit cuts the next file's
          // first read rather than waiting for its CLOSE.
          const key = fileKey(observation.sessionId, observation.share, observation.path);
          const first = !flow.filesLeaving.has(key);
          if (first) flow.filesLeaving.add(key);
          this.flushMeters(flow, ts);
          this.addToMeters(flow, ts, {
            ...NO_COUNTS,
            fileBytes: observation.bytes,
            files: first ? 1 : 0,
          });
        }
        break;
      case 'smb-user':
        flow.users.add(
          observation.domain ? `${observation.domain}\\${observation.user}` : observation.user,
        );
        flow.factsVersion++;
        break;
      case 'smb-file-access': {
        const { access } = observation;
        this.noteShare(flow, access.share);
        const key = fileKey(access.sessionId, access.share, access.path);
        const counted = flow.filesLeaving.delete(key);
        if (!counted && this.isFileEgress(flow, access.bytesRead, access.bytesWritten)) {
          this.flushMeters(flow, ts);
          this.addToMeters(flow, ts, { ...NO_COUNTS, files: 1 });
        }
        break;
      }
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
    this.moves.association(flow, request, ts);
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
        const meter = isMeterRule(rule) ? this.meters.ruleMeter(rule.id) : undefined;
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

  // Meters

  private flushMeters(flow: EngineFlow, ts: Millis): void {
    const bytes = flow.pendingEgress;
    flow.pendingEgress = 0;
    flow.lastMeterFlush = ts;
    if (bytes > 0) this.addToMeters(flow, ts, { ...NO_COUNTS, bytes });
  }

  /** Adds counts to the meters and acts on the threshold rules they cross. */
  private addToMeters(flow: EngineFlow, ts: Millis, counts: MeterCounts): void {
    this.stats.bytes.egress += counts.bytes;
    const { meterRules } = this.rulesFor(flow, ts);

    for (const { meter, crossing, over } of this.meters.add(flow, ts, counts, meterRules)) {
      if (crossing !== null) this.raiseMeterAlert(flow, ts, crossing);
      if (!over) continue;
      const action = crossingAction(meter.rule);
      if (meter.rule.action === 'block') this.maybeBlock(flow, meter.rule, action);
      if (meter.rule.action === 'throttle') this.maybeThrottle(flow, meter.rule, action);
    }
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
    this.events.alert(flow, ts, {
      rule,
      ruleset: this.policy.name,
      action: eventAction,
      verdict,
      denied: enforced && this.options.mode === 'inline',
      extra,
    });
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

  private countFlowBytes(flow: EngineFlow): void {
    const total = flow.bytes[0] + flow.bytes[1];
    if (flow.category === 'internal') this.stats.bytes.internal += total;
    else if (flow.category === 'unrelated') this.stats.bytes.unrelated += total;
    else if (flow.remoteSide !== null) this.stats.bytes.ingress += flow.bytes[flow.remoteSide];
  }
}

function fileKey(sessionId: string, share: string, path: string): string {
  return `${sessionId}|${share}|${path}`;
}

function crossingAction(rule: CompiledRule): EventAction {
  if (rule.kind === 'bulk-dicom') return 'bulk-dicom-egress';
  if (rule.kind === 'bulk-copy') return 'bulk-file-copy';
  return 'egress-threshold-exceeded';
}
