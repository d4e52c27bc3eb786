// Opens the upstream side of a CONNECT or SOCKS tunnel: checks the destination, connects to the
// checked address and opens the engine flow named by the target the client gave.

import { isIP, type Socket } from 'node:net';
import type { EngineFlow } from '../engine/flow.js';
import type { Endpoint } from '../engine/types.js';
import type { Refusal } from './destination.js';
import type { ProxyContext } from './gateway.js';

export type TunnelResult =
  | { kind: 'open'; upstream: Socket; flow: EngineFlow }
  | { kind: 'refused'; refusal: Refusal }
  /** The upstream could not be reached; `code` is the socket error code, like ECONNREFUSED. */
  | { kind: 'failed'; code: string };

export async function openTunnel(
  context: ProxyContext,
  client: Endpoint,
  host: string,
  port: number,
  nameSource: 'connect' | 'socks',
  answer: string,
): Promise<TunnelResult> {
  const decision = await context.guard.check({ client, host, port, ts: context.now() });
  const named =
    isIP(host) === 0 ? { responderName: { name: host.toLowerCase(), source: nameSource } } : {};
  if (!decision.ok) {
    context.recordRefusal(
      {
        initiator: client,
        responder: { ip: decision.refusal.address ?? '0.0.0.0', port },
        ...named,
      },
      decision.refusal,
      answer,
    );
    return { kind: 'refused', refusal: decision.refusal };
  }

  let upstream: Socket;
  try {
    upstream = await context.connectUpstream(decision.address, port);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'ERROR';
    context.log.warn(
      { client: client.ip, destination: host, port, code },
      'tunnel upstream unreachable',
    );
    context.recordUnreachable({
      initiator: client,
      responder: { ip: decision.address, port },
      ...named,
    });
    return { kind: 'failed', code };
  }

  const flow = context.openFlow({
    initiator: client,
    responder: { ip: decision.address, port },
    ...named,
  });
  if (flow.blocked !== null) {
    const verdict = flow.blocked;
    upstream.destroy();
    const refusal: Refusal = {
      reason: 'policy',
      ruleId: verdict.ruleId,
      ruleName: verdict.ruleName,
      verdict,
    };
    context.recordRefusal(flow, refusal, answer);
    return { kind: 'refused', refusal };
  }
  return { kind: 'open', upstream, flow };
}
