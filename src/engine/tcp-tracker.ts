// The span front-end's TCP layer: finds each packet's connection, orients it (who opened it),
// reassembles both directions and feeds the engine's flows. The table is bounded: the least
// recently used connection is evicted when it is full, and idle connections time out by
// packet time.

import { LRUCache } from 'lru-cache';
import { type DecodedPacket, ipv4ToString } from '../capture/decode.js';
import type { Engine } from './engine.js';
import type { EngineFlow } from './flow.js';
import type { FlowEndReason } from './front-end.js';
import {
  DEFAULT_REASSEMBLY_LIMITS,
  newReassemblyCounters,
  type ReassemblyCounters,
  type ReassemblyLimits,
  StreamReassembler,
} from './reassembly.js';
import type { Millis, Side } from './types.js';

const FIN = 0x01;
const SYN = 0x02;
const RST = 0x04;
const ACK = 0x10;
const TCP = 6;

export interface TrackerLimits {
  maxFlows: number;
  idleTimeoutMs: number;
  reassembly: ReassemblyLimits;
}

export const DEFAULT_TRACKER_LIMITS: TrackerLimits = {
  maxFlows: 100_000,
  idleTimeoutMs: 5 * 60_000,
  reassembly: DEFAULT_REASSEMBLY_LIMITS,
};

/** Sweep for idle connections at most this often, in packet time. */
const SWEEP_INTERVAL_MS = 10_000;
/** Refresh a connection's place in the table at most this often, in packet time. */
const TOUCH_INTERVAL_MS = 1_000;

/** Ports of services tollgate parses: a mid-stream side using one of them is the responder. */
const SERVICE_PORTS = new Set([80, 104, 139, 443, 445, 2761, 2762, 3128, 8080, 8443, 11112]);

export interface TrackerCounters extends ReassemblyCounters {
  connections: number;
  midStreamConnections: number;
  evictedConnections: number;
  idleTimeouts: number;
  packetsWithoutConnection: number;
  nonTcpPackets: number;
}

interface Connection {
  key: string;
  flow: EngineFlow;
  isV4: boolean;
  initiator4: number;
  responder4: number;
  initiator6: string;
  initiatorPort: number;
  responderPort: number;
  streams: [StreamReassembler, StreamReassembler];
  finSeen: [boolean, boolean];
  lastTouch: Millis;
}

export class TcpTracker {
  readonly counters: TrackerCounters;

  private readonly table: LRUCache<string, Connection>;
  private last: Connection | null = null;
  private nextSweep = 0;

  constructor(
    private readonly engine: Engine,
    private readonly limits: TrackerLimits = DEFAULT_TRACKER_LIMITS,
  ) {
    this.counters = {
      ...newReassemblyCounters(),
      connections: 0,
      midStreamConnections: 0,
      evictedConnections: 0,
      idleTimeouts: 0,
      packetsWithoutConnection: 0,
      nonTcpPackets: 0,
    };
    this.table = new LRUCache<string, Connection>({
      max: limits.maxFlows,
      dispose: (connection, _key, reason) => {
        if (reason !== 'evict') return;
        this.counters.evictedConnections++;
        this.close(connection, connection.flow.lastTs, 'evicted');
      },
    });
  }

  get size(): number {
    return this.table.size;
  }

  packet(packet: DecodedPacket): void {
    const ts = packet.ts;
    this.engine.tick(ts);
    if (ts >= this.nextSweep) this.sweep(ts);
    if (packet.protocol !== TCP) {
      this.counters.nonTcpPackets++;
      return;
    }

    let connection = this.last;
    let side = connection === null ? -1 : sideOfFast(connection, packet);
    if (side < 0) {
      connection = this.lookup(packet, ts);
      if (connection === null) return;
      side = sideOf(connection, packet);
      this.last = connection;
    } else if (ts - connection!.lastTouch >= TOUCH_INTERVAL_MS) {
      connection!.lastTouch = ts;
      this.table.get(connection!.key);
    }

    this.feed(connection!, side as Side, packet);
  }

  /** Ends every connection, as when the input ends. */
  finish(ts: Millis): void {
    for (const connection of [...this.table.values()]) this.close(connection, ts, 'input-end');
    this.table.clear();
    this.last = null;
  }

  private feed(connection: Connection, side: Side, packet: DecodedPacket): void {
    const flags = packet.tcpFlags;
    const ts = packet.ts;
    const stream = connection.streams[side];
    const synOffset = flags & SYN ? 1 : 0;

    if (flags & SYN) stream.synchronize(packet.seq);
    if (packet.payloadLength > 0) {
      const seq = (packet.seq + synOffset) >>> 0;
      stream.segment(seq, packet.data, packet.payloadOffset, packet.payloadLength, ts);
    }
    if (packet.payloadTruncated > 0) {
      const seq = (packet.seq + synOffset + packet.payloadLength) >>> 0;
      stream.missing(seq, packet.payloadTruncated, ts);
    }
    if (flags & ACK) connection.streams[1 - side]!.acknowledge(packet.ack, ts);

    if (flags & RST) {
      this.remove(connection, ts, 'rst');
      return;
    }
    if (flags & FIN) {
      stream.finish(
        (packet.seq + synOffset + packet.payloadLength + packet.payloadTruncated) >>> 0,
      );
      connection.finSeen[side] = true;
      if (connection.finSeen[0] && connection.finSeen[1]) this.remove(connection, ts, 'fin');
    }
  }

  private lookup(packet: DecodedPacket, ts: Millis): Connection | null {
    const key = connectionKey(packet);
    const existing = this.table.get(key);
    if (existing !== undefined) {
      existing.lastTouch = ts;
      return existing;
    }

    const flags = packet.tcpFlags;
    if (flags & RST || (packet.payloadLength === 0 && !(flags & SYN))) {
      this.counters.packetsWithoutConnection++;
      return null;
    }

    const packetFromInitiator = flags & SYN ? !(flags & ACK) : guessSenderIsInitiator(packet);
    const connection = this.open(key, packet, packetFromInitiator, (flags & SYN) === 0);
    this.table.set(key, connection);
    return connection;
  }

  private open(
    key: string,
    packet: DecodedPacket,
    fromInitiator: boolean,
    midStream: boolean,
  ): Connection {
    const isV4 = packet.ipVersion === 4;
    const srcIp = isV4 ? ipv4ToString(packet.src4) : packet.src6;
    const dstIp = isV4 ? ipv4ToString(packet.dst4) : packet.dst6;
    const sender = { ip: srcIp, port: packet.srcPort };
    const receiver = { ip: dstIp, port: packet.dstPort };
    const initiator = fromInitiator ? sender : receiver;
    const responder = fromInitiator ? receiver : sender;

    this.counters.connections++;
    if (midStream) this.counters.midStreamConnections++;
    const flow = this.engine.openFlow({ initiator, responder, ts: packet.ts, midStream });

    const streams = [0, 1].map(
      (side) =>
        new StreamReassembler(
          {
            deliver: (chunk, ts) => flow.data(side as Side, chunk, ts),
            gap: (length, ts) => flow.gap(side as Side, length, ts),
          },
          this.limits.reassembly,
          this.counters,
        ),
    ) as [StreamReassembler, StreamReassembler];

    return {
      key,
      flow,
      isV4,
      initiator4: fromInitiator ? packet.src4 : packet.dst4,
      responder4: fromInitiator ? packet.dst4 : packet.src4,
      initiator6: initiator.ip,
      initiatorPort: initiator.port,
      responderPort: responder.port,
      streams,
      finSeen: [false, false],
      lastTouch: packet.ts,
    };
  }

  private remove(connection: Connection, ts: Millis, reason: FlowEndReason): void {
    this.table.delete(connection.key);
    this.close(connection, ts, reason);
  }

  private close(connection: Connection, ts: Millis, reason: FlowEndReason): void {
    if (this.last === connection) this.last = null;
    if (connection.flow.ended) return;
    connection.streams[0].flush(ts);
    connection.streams[1].flush(ts);
    connection.flow.end(ts, reason);
  }

  private sweep(ts: Millis): void {
    this.nextSweep = ts + SWEEP_INTERVAL_MS;
    const idle: Connection[] = [];
    for (const connection of this.table.values()) {
      if (ts - connection.flow.lastTs > this.limits.idleTimeoutMs) idle.push(connection);
    }
    for (const connection of idle) {
      this.counters.idleTimeouts++;
      this.remove(connection, ts, 'idle-timeout');
    }
  }
}

function connectionKey(packet: DecodedPacket): string {
  if (packet.ipVersion === 4) {
    const srcFirst =
      packet.src4 < packet.dst4 ||
      (packet.src4 === packet.dst4 && packet.srcPort <= packet.dstPort);
    return srcFirst
      ? `${packet.src4}:${packet.srcPort}-${packet.dst4}:${packet.dstPort}`
      : `${packet.dst4}:${packet.dstPort}-${packet.src4}:${packet.srcPort}`;
  }
  const srcFirst =
    packet.src6 < packet.dst6 || (packet.src6 === packet.dst6 && packet.srcPort <= packet.dstPort);
  return srcFirst
    ? `[${packet.src6}]:${packet.srcPort}-[${packet.dst6}]:${packet.dstPort}`
    : `[${packet.dst6}]:${packet.dstPort}-[${packet.src6}]:${packet.srcPort}`;
}

/** The packet's side in an IPv4 connection by direct comparison, or -1 when it is another one. */
function sideOfFast(connection: Connection, packet: DecodedPacket): number {
  if (!connection.isV4 || packet.ipVersion !== 4) return -1;
  if (
    packet.src4 === connection.initiator4 &&
    packet.srcPort === connection.initiatorPort &&
    packet.dst4 === connection.responder4 &&
    packet.dstPort === connection.responderPort
  ) {
    return 0;
  }
  if (
    packet.src4 === connection.responder4 &&
    packet.srcPort === connection.responderPort &&
    packet.dst4 === connection.initiator4 &&
    packet.dstPort === connection.initiatorPort
  ) {
    return 1;
  }
  return -1;
}

function sideOf(connection: Connection, packet: DecodedPacket): Side {
  if (packet.srcPort !== connection.initiatorPort) return 1;
  if (packet.dstPort !== connection.responderPort) return 0;
  if (connection.isV4) return packet.src4 === connection.initiator4 ? 0 : 1;
  return packet.src6 === connection.initiator6 ? 0 : 1;
}

/**
 * Guesses, for a connection picked up mid-stream, whether the packet's sender opened it:
 * a side on a service port is the responder, else the lower port is.
 */
function guessSenderIsInitiator(packet: DecodedPacket): boolean {
  const srcService = SERVICE_PORTS.has(packet.srcPort);
  const dstService = SERVICE_PORTS.has(packet.dstPort);
  if (srcService !== dstService) return dstService;
  return packet.dstPort <= packet.srcPort;
}
