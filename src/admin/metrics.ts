// The Prometheus metrics the admin API serves on GET /metrics. Each scrape reads the gateway's
// and the engine's own counters, so the numbers match the "gateway stopped" log line, and
// prom-client only formats them. Label values come from bounded sets: event actions, policy
// rule ids and anomaly names defined in the code.

import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { Gateway } from '../proxy/gateway.js';

/** Builds a registry with the tollgate metrics of `gateway` and Node's process metrics. */
export function createAdminMetrics(gateway: Gateway): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const { engine, stats } = gateway;

  new Counter({
    name: 'tollgate_connections_accepted_total',
    help: 'Client connections accepted by the listeners.',
    registers,
    collect() {
      this.reset();
      this.inc(stats.accepted);
    },
  });
  new Counter({
    name: 'tollgate_connections_refused_total',
    help: 'Client connections refused, by reason: source (client outside the source networks), limit (max_connections or max_connections_per_source reached), destination (denied address, policy rule or gateway address).',
    labelNames: ['reason'] as const,
    registers,
    collect() {
      this.reset();
      this.inc({ reason: 'source' }, stats.refusedClients);
      this.inc({ reason: 'limit' }, stats.overLimit);
      this.inc({ reason: 'destination' }, stats.refusedDestinations);
    },
  });
  new Counter({
    name: 'tollgate_upstream_failures_total',
    help: 'Upstream connections that failed or timed out.',
    registers,
    collect() {
      this.reset();
      this.inc(stats.upstreamFailures);
    },
  });
  new Counter({
    name: 'tollgate_egress_bytes_total',
    help: 'Payload bytes sent by inside endpoints to remotes, as added to the meters.',
    registers,
    collect() {
      this.reset();
      this.inc(engine.stats.bytes.egress);
    },
  });
  new Counter({
    name: 'tollgate_events_total',
    help: 'Events written to the event sink, by event.action.',
    labelNames: ['action'] as const,
    registers,
    collect() {
      this.reset();
      for (const [action, count] of engine.stats.events) this.inc({ action }, count);
    },
  });
  new Counter({
    name: 'tollgate_alerts_total',
    help: 'Alerts raised, by policy rule id.',
    labelNames: ['rule'] as const,
    registers,
    collect() {
      this.reset();
      for (const [rule, { count }] of engine.stats.alerts) this.inc({ rule }, count);
    },
  });
  new Counter({
    name: 'tollgate_anomalies_total',
    help: 'Protocol parse anomalies, by anomaly name.',
    labelNames: ['name'] as const,
    registers,
    collect() {
      this.reset();
      for (const [name, count] of engine.stats.anomalies) this.inc({ name }, count);
    },
  });
  new Counter({
    name: 'tollgate_meter_evictions_total',
    help: 'Meter keys evicted because a meter store was full (least recently used first).',
    registers,
    collect() {
      this.reset();
      this.inc(engine.meterEvictions);
    },
  });
  new Gauge({
    name: 'tollgate_flows_open',
    help: 'Flows opened and not yet ended.',
    registers,
    collect() {
      this.set(engine.openFlowCount);
    },
  });
  return registry;
}
