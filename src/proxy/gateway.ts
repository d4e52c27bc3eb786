// The inline gateway: the engine in inline mode, the listeners from the configuration, and the
// services they share (client admission, destination checks, upstream connections, refusal
// events, draining). Listeners live in relay.ts, http-proxy.ts and socks5.ts.

import { connect, type Server, type Socket } from 'node:net';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { GatewayConfig, GatewayLimits } from '../config/load.js';
import type { HostPort } from '../config/schema.js';
import { Engine, type EventSinkLike, type PseudonymizerLike } from '../engine/engine.js';
import type { EngineFlow } from '../engine/flow.js';
import type { FlowOpenOptions } from '../engine/front-end.js';
import type { Endpoint, Millis } from '../engine/types.js';
import { formatHostPort } from '../net/address.js';
import { CidrSet } from '../policy/cidr.js';
import type { Policy } from '../policy/model.js';
import { PROTOCOLS } from '../protocols/registry.js';
import {
  DestinationGuard,
  type LookupFunction,
  type Refusal,
  systemLookup,
} from './destination.js';
import { startHttpProxy } from './http-proxy.js';
import { startRelay } from './relay.js';
import { startSocks5 } from './socks5.js';
import type { Splice } from './splice.js';
import { RateLimiterRegistry } from './throttle.js';

export interface GatewayOptions {
  config: GatewayConfig;
  policy: Policy;
  protectedNetworks: CidrSet;
  sink: EventSinkLike;
  pseudonymizer: PseudonymizerLike;
  log: Logger;
  observer: { hostname: string; version: string };
  /** Name resolution; tests inject a map to loopback addresses. */
  lookup?: LookupFunction;
}

/** Counters of the gateway's own decisions, for the log and the admin API. */
export interface GatewayStats {
  accepted: number;
  /** Clients outside the source networks. */
  refusedClients: number;
  /** Clients over max_connections or max_connections_per_source. */
  overLimit: number;
  /** Connections refused at connect time (denied destination, policy, gateway address). */
  refusedDestinations: number;
  upstreamFailures: number;
}

/** Services the gateway provides to its listeners. */
export interface ProxyContext {
  readonly engine: Engine;
  readonly limits: GatewayLimits;
  readonly guard: DestinationGuard;
  readonly log: Logger;
  readonly stats: GatewayStats;
  /** Bandwidth caps of throttle verdicts, shared by the flows to one remote. */
  readonly rateLimiters: RateLimiterRegistry;
  now(): Millis;
  /** Accepts or rejects a new client socket; rejected sockets are already destroyed. */
  admit(socket: Socket, listener: string): boolean;
  /** Connects to a checked address; rejects on error or after connect_timeout. */
  connectUpstream(address: string, port: number): Promise<Socket>;
  openFlow(options: Omit<FlowOpenOptions, 'ts'>): EngineFlow;
  /** Records a connection refused before it reached the upstream as a connection-blocked event. */
  recordRefusal(target: RefusedTarget | EngineFlow, refusal: Refusal, answer: string): void;
  /** Records a connection whose upstream could not be reached, as a flow ended `unreachable`. */
  recordUnreachable(target: RefusedTarget): void;
  track(splice: Splice): void;
  untrack(splice: Splice): void;
}

/** A refused connection's endpoints; `remoteName` is a name the client gave for the target. */
export type RefusedTarget = Omit<FlowOpenOptions, 'ts'> & {
  remoteName?: { name: string; source: 'http-host' };
};

export function clientEndpoint(socket: Socket): Endpoint {
  return { ip: normalizeAddress(socket.remoteAddress ?? '0.0.0.0'), port: socket.remotePort ?? 0 };
}

/** Strips the IPv4-mapped prefix dual-stack sockets report ("::ffff:192.0.2.1"). */
export function normalizeAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** Shortest time between two connection-blocked events for the same refused client address. */
export const REFUSED_CLIENT_EVENT_MS = 60_000;

export class Gateway implements ProxyContext {
  readonly engine: Engine;
  readonly limits: GatewayLimits;
  readonly guard: DestinationGuard;
  readonly log: Logger;
  readonly stats: GatewayStats = {
    accepted: 0,
    refusedClients: 0,
    overLimit: 0,
    refusedDestinations: 0,
    upstreamFailures: 0,
  };
  readonly rateLimiters = new RateLimiterRegistry();
  /** Bound listeners, in configuration order, with their actual ports. */
  readonly servers: Array<{ name: string; server: Server; address: HostPort }> = [];

  private readonly sourceNetworks: CidrSet;
  private readonly clients = new Set<Socket>();
  private readonly perSource = new Map<string, number>();
  private readonly splices = new Set<Splice>();
  /** Client addresses refused lately, so each gets one event per REFUSED_CLIENT_EVENT_MS. */
  private readonly recentlyRefusedClients = new LRUCache<string, true>({
    max: 10_000,
    ttl: REFUSED_CLIENT_EVENT_MS,
  });
  private draining = false;

  constructor(private readonly options: GatewayOptions) {
    const { config } = options;
    this.limits = config.limits;
    this.log = options.log;
    this.engine = new Engine({
      policy: options.policy,
      protectedNetworks: options.protectedNetworks,
      sink: options.sink,
      pseudonymizer: options.pseudonymizer,
      mode: 'inline',
      protocols: PROTOCOLS,
      observer: options.observer,
      // Meters are updated on every read, so a cut lands within one read of the threshold.
      limits: { meterFlushBytes: 1 },
    });
    this.sourceNetworks =
      config.sourceNetworks === null
        ? options.protectedNetworks
        : CidrSet.parse(config.sourceNetworks);
    const ownAddresses = config.listeners.map((listener) => listener.listen);
    if (config.admin !== null) ownAddresses.push(config.admin);
    this.guard = new DestinationGuard({
      deniedDestinations: CidrSet.parse(config.deniedDestinations),
      protectedNetworks: () => options.protectedNetworks,
      ownAddresses,
      policyRefusal: (facts) => this.engine.destinationRefusal(facts),
      lookup: options.lookup ?? systemLookup,
    });
  }

  now(): Millis {
    return performance.timeOrigin + performance.now();
  }

  /** Binds every listener; rejects when one cannot be bound (the others are closed again). */
  async start(): Promise<void> {
    try {
      for (const listener of this.options.config.listeners) {
        let server: Server;
        if (listener.type === 'relay') server = startRelay(this, listener);
        else if (listener.type === 'http-proxy') server = startHttpProxy(this, listener);
        else server = startSocks5(this, listener);
        await listen(server, listener.listen);
        const bound = server.address();
        const port =
          typeof bound === 'object' && bound !== null ? bound.port : listener.listen.port;
        this.servers.push({
          name: listener.name,
          server,
          address: { host: listener.listen.host, port },
        });
        this.log.info(
          { listener: listener.name, type: listener.type, host: listener.listen.host, port },
          'listening',
        );
      }
    } catch (error) {
      for (const { server } of this.servers) server.close();
      throw error;
    }
    if (!networksOverlap(this.sourceNetworks, this.options.protectedNetworks)) {
      // Egress is what inside endpoints send, so with every client outside, uploads are never
      // metered: only what destinations inside the protected networks send back is.
      this.log.warn(
        {
          sourceNetworks: this.sourceNetworks.entries,
          protectedNetworks: this.options.protectedNetworks.entries,
        },
        'no source network overlaps the protected networks, so client uploads are not metered; add the clients to protected_networks',
      );
    }
  }

  /** Replaces the running policy; the caller validated it. */
  setPolicy(policy: Policy): void {
    this.engine.setPolicy(policy);
  }

  admit(socket: Socket, listener: string): boolean {
    const client = clientEndpoint(socket);
    if (this.draining) {
      socket.destroy();
      return false;
    }
    if (!this.sourceNetworks.has(client.ip)) {
      this.stats.refusedClients++;
      this.recordRefusedClient(socket, client);
      // Logged at 1, 2, 4, 8 ... refusals, so a scan cannot flood the log.
      if (isPowerOfTwo(this.stats.refusedClients)) {
        this.log.warn(
          { listener, client: client.ip, refusedClients: this.stats.refusedClients },
          'client outside the source networks refused',
        );
      }
      socket.resetAndDestroy();
      return false;
    }
    const fromSource = this.perSource.get(client.ip) ?? 0;
    if (
      this.clients.size >= this.limits.maxConnections ||
      fromSource >= this.limits.maxConnectionsPerSource
    ) {
      this.stats.overLimit++;
      if (isPowerOfTwo(this.stats.overLimit)) {
        this.log.warn(
          {
            listener,
            client: client.ip,
            open: this.clients.size,
            fromSource,
            overLimit: this.stats.overLimit,
          },
          'connection limit reached, client refused',
        );
      }
      socket.destroy();
      return false;
    }

    this.stats.accepted++;
    this.clients.add(socket);
    this.perSource.set(client.ip, fromSource + 1);
    socket.once('close', () => {
      this.clients.delete(socket);
      const left = (this.perSource.get(client.ip) ?? 1) - 1;
      if (left <= 0) this.perSource.delete(client.ip);
      else this.perSource.set(client.ip, left);
    });
    return true;
  }

  connectUpstream(address: string, port: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: address, port, allowHalfOpen: true, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy();
        this.stats.upstreamFailures++;
        const error: NodeJS.ErrnoException = new Error(
          `connect to ${formatHostPort(address, port)} timed out after ${this.limits.connectTimeoutMs} ms`,
        );
        error.code = 'ETIMEDOUT';
        reject(error);
      }, this.limits.connectTimeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(socket);
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        this.stats.upstreamFailures++;
        reject(error);
      });
    });
  }

  openFlow(options: Omit<FlowOpenOptions, 'ts'>): EngineFlow {
    return this.engine.openFlow({ ...options, ts: this.now() });
  }

  recordRefusal(target: RefusedTarget | EngineFlow, refusal: Refusal, answer: string): void {
    this.stats.refusedDestinations++;
    const ts = this.now();
    const flow = 'id' in target ? target : this.openTargetFlow(target, ts);
    this.engine.emitEnforcement(flow, ts, 'connection-blocked', {
      rule: { id: refusal.ruleId, name: refusal.ruleName },
      tollgate: {
        enforcement: { answer, reason: refusal.reason, bytes_to_upstream: 0, bytes_to_client: 0 },
      },
    });
    flow.end(ts, 'refused');
    this.log.info(
      {
        client: flow.initiator.ip,
        destination: flow.remoteName ?? flow.responder.ip,
        port: flow.responder.port,
        rule: refusal.ruleId,
        reason: refusal.reason,
      },
      'connection refused',
    );
  }

  recordUnreachable(target: RefusedTarget): void {
    const ts = this.now();
    this.openTargetFlow(target, ts).end(ts, 'unreachable');
  }

  /** Opens the flow of a connection that never reached its upstream, named as the client named it. */
  private openTargetFlow(target: RefusedTarget, ts: Millis): EngineFlow {
    const { remoteName, ...options } = target;
    const flow = this.engine.openFlow({ ...options, ts });
    if (remoteName !== undefined) flow.observe({ kind: 'remote-name', ...remoteName }, ts);
    return flow;
  }

  /**
   * Writes a connection-blocked event for a client outside the source networks, at most once
   * per client address per REFUSED_CLIENT_EVENT_MS, so a scan cannot flood the SIEM. The limit
   * holds for the 10,000 most recent addresses: a scan from more addresses within that time
   * can repeat events. Every refusal is counted in the stats and the admin API's metrics.
   */
  private recordRefusedClient(socket: Socket, client: Endpoint): void {
    if (this.recentlyRefusedClients.has(client.ip)) return;
    this.recentlyRefusedClients.set(client.ip, true);

    const ts = this.now();
    const listener = {
      ip: normalizeAddress(socket.localAddress ?? '0.0.0.0'),
      port: socket.localPort ?? 0,
    };
    const flow = this.engine.openFlow({ initiator: client, responder: listener, ts });
    this.engine.emitEnforcement(flow, ts, 'connection-blocked', {
      rule: { id: 'source-networks', name: 'Client outside the source networks' },
      tollgate: {
        enforcement: {
          answer: 'reset',
          reason: 'source-not-allowed',
          bytes_to_upstream: 0,
          bytes_to_client: 0,
        },
      },
    });
    flow.end(ts, 'refused');
  }

  track(splice: Splice): void {
    this.splices.add(splice);
  }

  untrack(splice: Splice): void {
    this.splices.delete(splice);
  }

  /**
   * Stops accepting, lets open connections finish until drain_timeout, then resets the rest
   * and ends every flow. Event flushing is the caller's (it owns the sink).
   */
  async drain(): Promise<void> {
    this.draining = true;
    const closed = this.servers.map(
      ({ server }) => new Promise<void>((resolve) => server.close(() => resolve())),
    );
    for (const { server } of this.servers)
      (server as { closeIdleConnections?: () => void }).closeIdleConnections?.();

    const deadline = Date.now() + this.limits.drainTimeoutMs;
    while (this.clients.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (this.clients.size > 0) {
      this.log.warn(
        { open: this.clients.size, drainTimeoutMs: this.limits.drainTimeoutMs },
        'drain deadline reached, resetting open connections',
      );
      for (const splice of this.splices) splice.destroy('shutdown');
      for (const socket of this.clients) if (!socket.destroyed) socket.resetAndDestroy();
    }
    await Promise.all(closed);
    this.engine.finish(this.now());
  }
}

function listen(server: Server, address: HostPort): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** True when some address is in both sets: two networks overlap when one contains the other's address. */
export function networksOverlap(a: CidrSet, b: CidrSet): boolean {
  const address = (entry: string) => entry.split('/')[0] ?? entry;
  return (
    a.entries.some((entry) => b.has(address(entry))) ||
    b.entries.some((entry) => a.has(address(entry)))
  );
}

/** True for 1, 2, 4, 8 ...: repeated warnings are logged at those counts only. */
export function isPowerOfTwo(n: number): boolean {
  return (n & (n - 1)) === 0;
}
