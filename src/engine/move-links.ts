// Links the associations an archive opens to a C-MOVE's Move Destination with the C-MOVE
// request that caused them, so events name who asked for the studies that left.

import { LRUCache } from 'lru-cache';
import type { EngineFlow } from './flow.js';
import type { Millis, Observation } from './types.js';

export interface MoveRequester {
  requesterIp: string;
  requesterPort: number;
  callingAeTitle: string;
  flowId: string;
  ts: Millis;
}

export class MoveLinks {
  /** C-MOVE requests by archive address and Move Destination AE title. */
  private readonly pending: LRUCache<string, MoveRequester>;
  private readonly requesters = new WeakMap<EngineFlow, MoveRequester>();

  constructor(
    maxPending: number,
    private readonly linkWindowMs: number,
  ) {
    this.pending = new LRUCache({ max: maxPending });
  }

  /** Remembers a C-MOVE request the remote sent to the archive on `flow`. */
  request(
    flow: EngineFlow,
    move: Extract<Observation, { kind: 'dicom-move-request' }>,
    ts: Millis,
  ): void {
    this.pending.set(`${flow.inside.ip}|${move.moveDestination}`, {
      requesterIp: flow.remote.ip,
      requesterPort: flow.remote.port,
      callingAeTitle: move.callingAeTitle,
      flowId: flow.id,
      ts,
    });
  }

  /** Links an association the inside side opened to the C-MOVE that named its called AE. */
  association(
    flow: EngineFlow,
    request: Extract<Observation, { kind: 'dicom-association-request' }>,
    ts: Millis,
  ): void {
    if (request.requestorSide !== flow.insideSide) return;
    const move = this.pending.get(`${flow.inside.ip}|${request.calledAeTitle}`);
    if (move !== undefined && ts - move.ts <= this.linkWindowMs) this.requesters.set(flow, move);
  }

  requesterOf(flow: EngineFlow): MoveRequester | undefined {
    return this.requesters.get(flow);
  }
}
