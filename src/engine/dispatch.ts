// Chooses a flow's analyzer from the first bytes of its streams. The port is only a hint:
// it decides which protocol is probed first, and content decides which one is used.

import type { AnalyzerFactory, ProtocolName, Side } from './types.js';

export interface ProtocolModule {
  readonly name: ProtocolName;
  /** True or false once `head` (the first bytes a side sent) is enough to tell, else undefined. */
  probe(side: Side, head: Buffer): boolean | undefined;
  readonly create: AnalyzerFactory;
  readonly defaultPorts: readonly number[];
}

/** Bytes of each side's stream kept for probing. */
export const PROBE_HEAD_BYTES = 24;

export type ProbeResult = ProtocolModule | 'unknown' | 'undecided';

/**
 * Runs the probes on one side's head. A module whose default ports include the responder's
 * port is probed first, so two protocols that both accept a head are settled by the port.
 */
export function probeProtocols(
  modules: readonly ProtocolModule[],
  side: Side,
  head: Buffer,
  responderPort: number,
): ProbeResult {
  let undecided = false;
  const ordered = orderByPortHint(modules, responderPort);

  for (const module of ordered) {
    const verdict = module.probe(side, head);
    if (verdict === true) return module;
    if (verdict === undefined) undecided = true;
  }

  if (undecided && head.length < PROBE_HEAD_BYTES) return 'undecided';
  return 'unknown';
}

function orderByPortHint(
  modules: readonly ProtocolModule[],
  responderPort: number,
): readonly ProtocolModule[] {
  const hinted = modules.findIndex((module) => module.defaultPorts.includes(responderPort));
  if (hinted <= 0) return modules;
  return [modules[hinted]!, ...modules.filter((_, index) => index !== hinted)];
}
