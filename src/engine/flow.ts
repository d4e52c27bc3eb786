// One TCP flow inside the engine: orientation, protocol detection, analyzer, facts the rules
// read, meter entries and the per-flow alert state. Front-ends drive it through FlowHandle;
// analyzers report to it through AnalyzerSink.

import type { MeterEntry } from '../meter/store.js';
import type { FlowFacts } from '../policy/model.js';
import { PROBE_HEAD_BYTES, type ProtocolModule, probeProtocols } from './dispatch.js';
import type { FlowEndReason, FlowHandle, FlowOpenOptions, Verdict } from './front-end.js';
import type {
  Analyzer,
  AnalyzerSink,
  Endpoint,
  FlowView,
  Millis,
  Observation,
  ProtocolName,
  Side,
} from './types.js';

/** A flow's place relative to the protected networks. */
export type FlowCategory = 'egress' | 'internal' | 'unrelated';

/** Bytes of a side buffered while the protocol is not decided yet. */
const MAX_UNDECIDED_BYTES = 64 * 1024;

/** The engine's side of a flow: the protocol modules and the callbacks flows report to. */
export interface FlowHost {
  readonly protocols: readonly ProtocolModule[];
  onObservation(flow: EngineFlow, observation: Observation, ts: Millis): void;
  onAnomaly(
    flow: EngineFlow,
    name: string,
    ts: Millis,
    details?: Record<string, string | number>,
  ): void;
  onEgress(flow: EngineFlow, ts: Millis): void;
  onGap(flow: EngineFlow, side: Side, length: number, ts: Millis): void;
  onEnd(flow: EngineFlow, ts: Millis, reason: FlowEndReason): void;
}

export class EngineFlow implements FlowHandle, FlowView, AnalyzerSink {
  readonly id: string;
  readonly initiator: Endpoint;
  readonly responder: Endpoint;
  readonly insideSide: Side | null;
  readonly category: FlowCategory;
  readonly startTs: Millis;
  readonly midStream: boolean;
  lastTs: Millis;
  ended = false;
  endReason: FlowEndReason | null = null;

  /** Payload bytes seen from each side. */
  readonly bytes: [number, number] = [0, 0];
  /** Payload bytes each side sent that were never seen (gaps, estimated). */
  readonly missingBytes: [number, number] = [0, 0];
  /** Egress bytes not yet added to the meters; the engine flushes them in batches. */
  pendingEgress = 0;
  lastMeterFlush: Millis;

  protocol: ProtocolName | null = null;
  remoteName: string | undefined;
  remoteNameSource: string | undefined;
  readonly users = new Set<string>();
  readonly aeTitles = new Set<string>();
  readonly shares = new Set<string>();
  /** SMB files open on this flow whose data has started to leave, counted once each. */
  readonly filesLeaving = new Set<string>();
  userAgent: string | undefined;
  readonly anomalies = new Map<string, number>();

  /** Bumped whenever a fact the rules read changes. */
  factsVersion = 0;
  rulesVersion = -1;
  /** True once the destination rules ran for this flow's first egress byte. */
  egressEvaluated = false;
  /** Rule ids that already raised their alert on this flow. */
  readonly firedRules = new Set<string>();
  blocked: Verdict | null = null;
  /** Throttle verdicts in force, at most one per rule. */
  readonly throttles: Verdict[] = [];
  /** Meter entries this flow adds to, cached by store; revalidated when evicted. */
  readonly meterEntries = new Map<object, MeterEntry>();

  private analyzer: Analyzer | null = null;
  private readonly heads: [Buffer | null, Buffer | null] = [null, null];
  private undecided: Array<{ side: Side; chunk: Buffer; ts: Millis }> = [];
  private readonly probeResults: ['unknown' | 'undecided' | null, 'unknown' | 'undecided' | null] =
    [null, null];
  private undecidedBytes = 0;
  private readonly blockListeners: Array<(verdict: Verdict) => void> = [];
  private readonly throttleListeners: Array<(verdict: Verdict) => void> = [];

  constructor(
    private readonly host: FlowHost,
    id: string,
    options: FlowOpenOptions,
    insideSide: Side | null,
    category: FlowCategory,
  ) {
    this.id = id;
    this.initiator = options.initiator;
    this.responder = options.responder;
    this.insideSide = insideSide;
    this.category = category;
    this.startTs = options.ts;
    this.lastTs = options.ts;
    this.lastMeterFlush = options.ts;
    this.midStream = options.midStream === true;
    if (options.responderName !== undefined) {
      this.remoteName = options.responderName.name;
      this.remoteNameSource = options.responderName.source;
    }
  }

  get remoteSide(): Side | null {
    return this.insideSide === null ? null : ((1 - this.insideSide) as Side);
  }

  get remote(): Endpoint {
    return this.insideSide === 0 ? this.responder : this.initiator;
  }

  get inside(): Endpoint {
    return this.insideSide === 0 ? this.initiator : this.responder;
  }

  get egressBytes(): number {
    return this.insideSide === null ? 0 : this.bytes[this.insideSide];
  }

  get egressMissingBytes(): number {
    return this.insideSide === null ? 0 : this.missingBytes[this.insideSide];
  }

  /** The best user name known: an SMB user, else the remote's AE title. */
  get meterUser(): string | undefined {
    for (const user of this.users) return user;
    return undefined;
  }

  facts(ts: Millis): FlowFacts {
    const facts: FlowFacts = {
      remoteIp: this.remote.ip,
      remotePort: this.remote.port,
      sourceIp: this.inside.ip,
      protocol: this.protocol ?? 'unknown',
      ts,
    };
    if (this.remoteName !== undefined) facts.remoteName = this.remoteName;
    if (this.users.size > 0) facts.users = [...this.users];
    if (this.aeTitles.size > 0) facts.aeTitles = [...this.aeTitles];
    if (this.shares.size > 0) facts.shares = [...this.shares];
    if (this.userAgent !== undefined) facts.userAgent = this.userAgent;
    return facts;
  }

  // FlowHandle

  data(side: Side, chunk: Buffer, ts: Millis): void {
    if (this.ended || chunk.length === 0) return;
    this.lastTs = ts;
    this.bytes[side] += chunk.length;

    if (this.category === 'egress') {
      if (this.analyzer !== null) this.analyzer.data(side, chunk, ts);
      else this.detect(side, chunk, ts);

      if (side === this.insideSide) {
        this.pendingEgress += chunk.length;
        this.host.onEgress(this, ts);
      }
    }
  }

  gap(side: Side, length: number, ts: Millis): void {
    if (this.ended || length <= 0) return;
    this.lastTs = ts;
    this.missingBytes[side] += length;
    if (this.category !== 'egress') return;

    if (this.analyzer === null) this.decide(this.fallbackModule(), ts);
    this.analyzer?.gap(side, length, ts);
    this.host.onGap(this, side, length, ts);
  }

  end(ts: Millis, reason: FlowEndReason): void {
    if (this.ended) return;
    if (this.category === 'egress' && this.analyzer === null)
      this.decide(this.fallbackModule(), ts);
    this.analyzer?.end(ts);
    this.ended = true;
    this.endReason = reason;
    this.lastTs = Math.max(this.lastTs, ts);
    this.host.onEnd(this, ts, reason);
  }

  onBlock(listener: (verdict: Verdict) => void): void {
    this.blockListeners.push(listener);
    if (this.blocked !== null) listener(this.blocked);
  }

  /** Records a block verdict once and passes it to the front-end's listeners. */
  block(verdict: Verdict): void {
    if (this.blocked !== null) return;
    this.blocked = verdict;
    for (const listener of this.blockListeners) listener(verdict);
  }

  onThrottle(listener: (verdict: Verdict) => void): void {
    this.throttleListeners.push(listener);
    for (const verdict of this.throttles) listener(verdict);
  }

  /** Records a throttle verdict once per rule and passes it to the front-end's listeners. */
  throttle(verdict: Verdict): void {
    if (this.throttles.some((known) => known.ruleId === verdict.ruleId)) return;
    this.throttles.push(verdict);
    for (const listener of this.throttleListeners) listener(verdict);
  }

  // AnalyzerSink

  observe(observation: Observation, ts: Millis): void {
    this.host.onObservation(this, observation, ts);
  }

  anomaly(name: string, ts: Millis, details?: Record<string, string | number>): void {
    this.anomalies.set(name, (this.anomalies.get(name) ?? 0) + 1);
    this.host.onAnomaly(this, name, ts, details);
  }

  // Protocol detection

  private detect(side: Side, chunk: Buffer, ts: Millis): void {
    this.undecided.push({ side, chunk: Buffer.from(chunk), ts });
    this.undecidedBytes += chunk.length;

    const head = this.heads[side];
    const room = PROBE_HEAD_BYTES - (head?.length ?? 0);
    if (room > 0) {
      const added = chunk.subarray(0, room);
      this.heads[side] = head === null ? Buffer.from(added) : Buffer.concat([head, added]);
    }

    const result = probeProtocols(
      this.host.protocols,
      side,
      this.heads[side]!,
      this.responder.port,
    );
    if (typeof result === 'object') {
      this.decide(result, ts);
      return;
    }

    // The protocols tollgate parses all start with the initiator. So an initiator head that no
    // probe accepts settles the question, and a responder head alone waits for the initiator.
    this.probeResults[side] = result;
    const settled = this.probeResults[0] === 'unknown';
    if (settled || this.undecidedBytes >= MAX_UNDECIDED_BYTES) this.decide(null, ts);
  }

  /** Content no probe accepts on a port a parsed protocol uses is worth a look: garbage or evasion. */
  private reportUnrecognizedService(ts: Millis): void {
    // A flow picked up mid-stream starts anywhere in its protocol (TLS application data, the
    // middle of a DICOM PDU), so only a flow seen from its start can be judged.
    if (this.midStream) return;
    const expected = this.portModule();
    if (expected === undefined || (this.heads[0] === null && this.heads[1] === null)) return;
    this.anomaly(UNRECOGNIZED_CONTENT, ts, { expected: expected.name, port: this.responder.port });
  }

  private fallbackModule(): ProtocolModule | null {
    for (const side of [0, 1] as const) {
      const head = this.heads[side];
      if (head === null) continue;
      const result = probeProtocols(this.host.protocols, side, head, this.responder.port);
      if (typeof result === 'object') return result;
    }
    return null;
  }

  private decide(probed: ProtocolModule | null, ts: Millis): void {
    // A flow picked up mid-stream rarely starts at a record boundary, so no probe accepts it:
    // the protocol of its service port is taken, and its analyzer resynchronizes as after a gap.
    const hinted = probed === null && this.midStream ? this.portModule() : undefined;
    const module = probed ?? hinted ?? null;
    this.protocol = module?.name ?? 'unknown';
    if (module === null) this.reportUnrecognizedService(ts);
    this.factsVersion++;
    this.analyzer = module === null ? COUNTING_ANALYZER : module.create(this, this);

    const buffered = this.undecided;
    this.undecided = [];
    this.undecidedBytes = 0;
    if (hinted !== undefined) {
      for (const side of [0, 1] as const) this.analyzer.gap(side, 0, ts);
    }
    for (const { side, chunk, ts } of buffered) this.analyzer.data(side, chunk, ts);
  }

  /** Returns the protocol whose default ports include the responder's port. */
  private portModule(): ProtocolModule | undefined {
    const port = this.responder.port;
    return this.host.protocols.find((module) => module.defaultPorts.includes(port));
  }
}

export const UNRECOGNIZED_CONTENT = 'dispatch.unrecognized_content';
/** The analyzer of flows whose protocol is unknown: the engine counts their bytes. */
const COUNTING_ANALYZER: Analyzer = {
  protocol: 'unknown',
  data() {},
  gap() {},
  end() {},
};
