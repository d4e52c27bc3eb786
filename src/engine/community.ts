// The Community ID of a flow, computed once and cached.

import { communityId, IPPROTO_TCP } from '../events/community-id.js';
import type { EngineFlow } from './flow.js';

const cache = new WeakMap<EngineFlow, string>();

export function communityIdFor(flow: EngineFlow): string | undefined {
  let id = cache.get(flow);
  if (id === undefined) {
    const computed = communityId(
      IPPROTO_TCP,
      flow.initiator.ip,
      flow.initiator.port,
      flow.responder.ip,
      flow.responder.port,
    );
    if (computed === null) return undefined;
    id = computed;
    cache.set(flow, id);
  }
  return id;
}
