// TCP relay listener: each client connection is relayed to the configured upstream host:port.
// The upstream is checked like any destination; a refused one closes the client connection.

import { createServer, type Server, type Socket } from 'node:net';
import type { Listener } from '../config/load.js';
import type { EngineFlow } from '../engine/flow.js';
import type { Verdict } from '../engine/front-end.js';
import { formatHostPort } from '../net/address.js';
import { associateRejectFor, associateRejectTransientPdu } from './dicom-pdu.js';
import { clientEndpoint, type ProxyContext } from './gateway.js';
import { endGracefully } from './graceful-close.js';
import { Splice } from './splice.js';

type RelayListener = Extract<Listener, { type: 'relay' }>;

export function startRelay(context: ProxyContext, listener: RelayListener): Server {
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
  server.on('connection', (client: Socket) => {
    if (!context.admit(client, listener.name)) return;
    client.on('error', () => {});
    relayConnection(context, listener, client).catch((error: unknown) => {
      context.log.error({ listener: listener.name, err: error }, 'relay connection failed');
      if (!client.destroyed) client.destroy();
    });
  });
  return server;
}

async function relayConnection(
  context: ProxyContext,
  listener: RelayListener,
  client: Socket,
): Promise<void> {
  const initiator = clientEndpoint(client);
  const { host, port } = listener.upstream;
  const decision = await context.guard.check({
    client: initiator,
    host,
    port,
    // No protocol here: rules that name a protocol wait for the content (for DICOM, until the
    // A-ASSOCIATE-RQ shows the AE titles), as the engine's own evaluation does.
    ts: context.now(),
  });
  const hint = listener.protocol === undefined ? {} : { protocolHint: listener.protocol };
  if (!decision.ok) {
    context.recordRefusal(
      { initiator, responder: { ip: decision.refusal.address ?? '0.0.0.0', port }, ...hint },
      decision.refusal,
      refuseClient(client, listener, decision.refusal.verdict),
    );
    return;
  }
  if (client.destroyed) return;

  let upstream: Socket;
  try {
    upstream = await context.connectUpstream(decision.address, port);
  } catch (error) {
    context.log.warn(
      {
        listener: listener.name,
        upstream: formatHostPort(decision.address, port),
        code: (error as NodeJS.ErrnoException).code,
      },
      'relay upstream unreachable',
    );
    context.recordUnreachable({ initiator, responder: { ip: decision.address, port }, ...hint });
    // A DICOM requester learns the archive is unreachable for now; other clients get a reset.
    if (listener.protocol === 'dicom') endGracefully(client, associateRejectTransientPdu());
    else client.resetAndDestroy();
    return;
  }
  if (client.destroyed) {
    upstream.destroy();
    return;
  }

  const flow: EngineFlow = context.openFlow({
    initiator,
    responder: { ip: decision.address, port },
    ...hint,
  });
  if (flow.blocked !== null) {
    // A destination rule fired at open (for example one that matches the protocol hint).
    const verdict = flow.blocked;
    upstream.destroy();
    context.recordRefusal(
      flow,
      { reason: 'policy', ruleId: verdict.ruleId, ruleName: verdict.ruleName, verdict },
      refuseClient(client, listener, verdict),
    );
    return;
  }

  const splice = new Splice({
    client,
    upstream,
    flow,
    services: context,
    idleTimeoutMs: context.limits.idleTimeoutMs,
    dicom: listener.protocol === 'dicom',
    onClose: () => context.untrack(splice),
  });
  context.track(splice);
}

/**
 * Closes a refused client and returns the event's `tollgate.enforcement.answer`. A DICOM
 * requester gets an A-ASSOCIATE-RJ, so it reports a rejected association rather than a closed
 * connection. It reads the RJ after sending its A-ASSOCIATE-RQ, even when the RJ arrived first.
 */
function refuseClient(client: Socket, listener: RelayListener, verdict?: Verdict): string {
  if (listener.protocol === 'dicom') {
    endGracefully(client, associateRejectFor(verdict));
    return 'a-associate-rj';
  }
  endGracefully(client);
  return 'close';
}
