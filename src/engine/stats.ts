// Counters the engine keeps for the end-of-run summary and the exit status.

export interface EngineStats {
  flows: { egress: number; internal: number; unrelated: number };
  bytes: {
    /** Payload bytes sent by inside endpoints to remotes. */
    egress: number;
    /** Estimated egress bytes lost to gaps and mid-stream starts. */
    egressMissing: number;
    ingress: number;
    internal: number;
    unrelated: number;
  };
  events: Map<string, number>;
  alerts: Map<string, { name: string; count: number }>;
  anomalies: Map<string, number>;
  hourRecordsDropped: number;
  countAlert(ruleId: string, ruleName: string): void;
}

export function newEngineStats(): EngineStats {
  const alerts = new Map<string, { name: string; count: number }>();
  return {
    flows: { egress: 0, internal: 0, unrelated: 0 },
    bytes: { egress: 0, egressMissing: 0, ingress: 0, internal: 0, unrelated: 0 },
    events: new Map(),
    alerts,
    anomalies: new Map(),
    hourRecordsDropped: 0,
    countAlert(ruleId: string, ruleName: string): void {
      const entry = alerts.get(ruleId);
      if (entry === undefined) alerts.set(ruleId, { name: ruleName, count: 1 });
      else entry.count++;
    },
  };
}
