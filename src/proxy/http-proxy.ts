// HTTP forward proxy: absolute-form requests (RFC 9112 section 3.2.2) are forwarded on a new
// upstream connection each, with hop-by-hop headers removed (RFC 9110 section 7.6.1); CONNECT
// tunnels (RFC 9110 section 9.3.6) are relayed byte for byte, so the TLS analyzer sees the
// ClientHello. Node's HTTP server provides keep-alive, pipelining (responses in request order)
// and header timeouts. A refused destination gets 403 with a one-line body naming the rule.

import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { isIP, type Socket } from 'node:net';
import type { Listener } from '../config/load.js';
import { parseHostPort } from '../config/schema.js';
import { formatHostPort } from '../net/address.js';
import type { Refusal } from './destination.js';
import { clientEndpoint, isPowerOfTwo, type ProxyContext } from './gateway.js';
import { raiseMallocTrimThreshold } from './malloc-trim.js';
import { Splice } from './splice.js';
import { EgressThrottle } from './throttle.js';
import { openTunnel } from './tunnel.js';

type HttpProxyListener = Extract<Listener, { type: 'http-proxy' }>;

/** Headers that belong to one connection, never forwarded (RFC 9110 section 7.6.1). */
const HOP_BY_HOP = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
]);

/**
 * Time the proxy waits for the upstream's 100 (Continue) before it sends one to the client
 * itself. curl 7.88 waits as long by default (its --expect100-timeout).
 */
export const EXPECT_CONTINUE_TIMEOUT_MS = 1000;

export function refusalBody(refusal: Refusal): string {
  return `tollgate: destination refused by rule ${refusal.ruleId} (${refusal.ruleName})\n`;
}

export function startHttpProxy(context: ProxyContext, listener: HttpProxyListener): Server {
  const server = createServer({
    headersTimeout: context.limits.headerTimeoutMs,
    // Node checks headersTimeout only every connectionsCheckingInterval (30 s by default), so a
    // slow client would otherwise keep its connection up to 30 s past header_timeout.
    connectionsCheckingInterval: headerCheckIntervalMs(context.limits.headerTimeoutMs),
    requestTimeout: 0,
    keepAliveTimeout: 5000,
    // Node would respond to an HTTP/1.1 request without Host with a bare 400 and emit no event.
    // forward() responds instead, with a reason in the body and a log line.
    requireHostHeader: false,
  });
  server.timeout = context.limits.idleTimeoutMs;
  server.on('connection', (socket: Socket) => {
    context.admit(socket, listener.name);
  });
  const handle = (req: IncomingMessage, res: ServerResponse, expectContinue: boolean) => {
    forward(context, req, res, expectContinue).catch((error: unknown) => {
      context.log.error({ listener: listener.name, err: error }, 'proxied request failed');
      req.socket.destroy();
    });
  };
  server.on('request', (req, res) => handle(req, res, false));
  // With a 'checkContinue' listener Node leaves the 100 (Continue) to us: the expectation is
  // passed to the upstream only once the destination was accepted, so a refused upload never
  // sends its body.
  server.on('checkContinue', (req, res) => handle(req, res, true));
  server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => {});
    tunnel(context, req, socket, head).catch((error: unknown) => {
      context.log.error({ listener: listener.name, err: error }, 'CONNECT tunnel failed');
      socket.destroy();
    });
  });
  let clientErrors = 0;
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const status = clientErrorStatus(error.code);
    clientErrors++;
    // Logged at 1, 2, 4, 8 ... errors, so a scan or a broken client cannot flood the log.
    if (isPowerOfTwo(clientErrors)) {
      context.log.info(
        {
          listener: listener.name,
          client: clientEndpoint(socket).ip,
          code: error.code,
          status: Number.parseInt(status, 10),
          clientErrors,
        },
        'HTTP request rejected before it was parsed',
      );
    }
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  });
  return server;
}

/** Chooses the status line for a request that Node's parser rejected, by error code. */
function clientErrorStatus(code: string | undefined): string {
  // header_timeout expired before the request head was complete.
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return '408 Request Timeout';
  // The head is larger than Node's --max-http-header-size (16 KiB by default).
  if (code === 'HPE_HEADER_OVERFLOW') return '431 Request Header Fields Too Large';
  return '400 Bad Request';
}

/** A quarter of the header timeout, from 100 ms to 1 s: late by at most that much. */
export function headerCheckIntervalMs(headerTimeoutMs: number): number {
  return Math.min(1000, Math.max(100, Math.floor(headerTimeoutMs / 4)));
}

function plainResponse(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

function rawResponse(socket: Socket, status: string, body: string): void {
  socket.end(
    `HTTP/1.1 ${status}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

async function tunnel(
  context: ProxyContext,
  req: IncomingMessage,
  client: Socket,
  head: Buffer,
): Promise<void> {
  const target = parseHostPort(req.url ?? '');
  if (typeof target === 'string') {
    rawResponse(client, '400 Bad Request', `tollgate: invalid CONNECT target: ${target}\n`);
    return;
  }
  const result = await openTunnel(
    context,
    clientEndpoint(client),
    target.host,
    target.port,
    'connect',
    'http-403',
  );
  if (client.destroyed) {
    if (result.kind === 'open') result.upstream.destroy();
    return;
  }
  if (result.kind === 'refused') {
    rawResponse(client, '403 Forbidden', refusalBody(result.refusal));
    return;
  }
  if (result.kind === 'failed') {
    rawResponse(
      client,
      '502 Bad Gateway',
      `tollgate: cannot connect to ${formatHostPort(target.host, target.port)}: ${result.code}\n`,
    );
    return;
  }
  client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
  const splice = new Splice({
    client,
    upstream: result.upstream,
    flow: result.flow,
    services: context,
    idleTimeoutMs: context.limits.idleTimeoutMs,
    dicom: false,
    initialClientData: head,
    onClose: () => context.untrack(splice),
  });
  context.track(splice);
}

/** Copies the end-to-end headers of a flat raw header list, dropping hop-by-hop ones. */
function endToEndHeaders(raw: readonly string[]): string[] {
  const named = new Set(HOP_BY_HOP);
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'connection') {
      for (const token of raw[i + 1]!.split(',')) named.add(token.trim().toLowerCase());
    }
  }
  const kept: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (!named.has(raw[i]!.toLowerCase())) kept.push(raw[i]!, raw[i + 1]!);
  }
  return kept;
}

function withoutHost(raw: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== 'host') kept.push(raw[i]!, raw[i + 1]!);
  }
  return kept;
}

async function forward(
  context: ProxyContext,
  req: IncomingMessage,
  res: ServerResponse,
  expectContinue: boolean,
): Promise<void> {
  let url: URL;
  try {
    url = new URL(req.url ?? '');
  } catch {
    // A target with a scheme was meant as absolute-form but is not a valid URL.
    const body = /^[a-z][a-z0-9+.-]*:\/\//i.test(req.url ?? '')
      ? 'tollgate: invalid request URL; expected http://host[:port]/path with a port of 1-65535\n'
      : 'tollgate: this is a proxy; send absolute-form requests (http://host/path)\n';
    plainResponse(res, 400, body);
    return;
  }
  if (url.protocol !== 'http:') {
    const scheme = url.protocol.slice(0, -1);
    plainResponse(
      res,
      400,
      `tollgate: scheme ${scheme} is not supported; this proxy forwards only http:// requests, and https goes through CONNECT\n`,
    );
    return;
  }
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? 80 : Number(url.port);
  const target = formatHostPort(host, port);
  const client = clientEndpoint(req.socket);
  if (req.httpVersion === '1.1' && req.headers.host === undefined) {
    // RFC 9112 section 3.2: a server must respond 400 to an HTTP/1.1 request without Host.
    // HTTP/1.0 does not require it, and the absolute-form URL names the target either way.
    context.log.info(
      { client: client.ip, upstream: target },
      'HTTP/1.1 request without a Host header rejected',
    );
    res.shouldKeepAlive = false;
    plainResponse(res, 400, 'tollgate: HTTP/1.1 requests need a Host header\n');
    return;
  }

  const decision = await context.guard.check({
    client,
    host,
    port,
    protocol: 'http',
    ts: context.now(),
  });
  if (!decision.ok) {
    context.recordRefusal(
      {
        initiator: client,
        responder: { ip: decision.refusal.address ?? '0.0.0.0', port },
        ...(isIP(host) === 0 ? { remoteName: { name: host, source: 'http-host' as const } } : {}),
      },
      decision.refusal,
      'http-403',
    );
    res.shouldKeepAlive = false;
    plainResponse(res, 403, refusalBody(decision.refusal));
    return;
  }

  let upstream: Socket;
  try {
    upstream = await context.connectUpstream(decision.address, port);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'ERROR';
    // connectUpstream counted the failure.
    context.log.warn({ client: client.ip, upstream: target, code }, 'upstream unreachable');
    context.recordUnreachable({
      initiator: client,
      responder: { ip: decision.address, port },
      ...(isIP(host) === 0 ? { remoteName: { name: host, source: 'http-host' as const } } : {}),
    });
    plainResponse(res, 502, `tollgate: cannot connect to ${target}: ${code}\n`);
    return;
  }
  // The request and response bodies are read into a fresh buffer per read; see malloc-trim.ts.
  raiseMallocTrimThreshold();
  const flow = context.openFlow({ initiator: client, responder: { ip: decision.address, port } });
  let cut = false;
  // Bytes passed to the upstream socket and upstream bytes passed on toward the client. The
  // engine counts a chunk before its verdict, so a chunk that triggers a cut is in flow.bytes
  // but not here.
  const forwarded: [number, number] = [0, 0];
  // The request body is the egress: a throttle verdict delays its writes to the upstream.
  const throttle = new EgressThrottle({
    registry: context.rateLimiters,
    remoteIp: flow.remote.ip,
    now: () => context.now(),
    pauseSource: () => req.pause(),
    resumeSource: () => {
      if (!cut) req.resume();
    },
  });
  flow.onThrottle((verdict) => {
    throttle.add(verdict);
    context.log.info(
      { flow: flow.id, rule: verdict.ruleId, bytesPerSecond: verdict.rateBytesPerSecond },
      'egress throttled',
    );
  });
  flow.onBlock((verdict) => {
    cut = true;
    // Bytes still waiting in the socket's write buffer are dropped by the reset, not sent.
    const bytesToUpstream = forwarded[0] - upstream.writableLength;
    context.engine.emitEnforcement(flow, context.now(), 'transfer-cut', {
      rule: { id: verdict.ruleId, name: verdict.ruleName },
      tollgate: {
        enforcement: {
          answer: 'reset',
          reason: verdict.eventAction,
          bytes_to_upstream: bytesToUpstream,
          bytes_to_client: forwarded[1],
        },
      },
    });
    context.log.warn({ flow: flow.id, rule: verdict.ruleId, bytesToUpstream }, 'transfer cut');
    throttle.dispose();
    upstream.resetAndDestroy();
    req.socket.resetAndDestroy();
  });

  // Every byte the HTTP client writes goes to the engine first; after a cut nothing is written.
  const write = upstream.write.bind(upstream) as (chunk: unknown, ...rest: unknown[]) => boolean;
  upstream.write = ((chunk: unknown, ...rest: unknown[]) => {
    if (cut) return false;
    const bytes =
      typeof chunk === 'string'
        ? Buffer.from(chunk, typeof rest[0] === 'string' ? (rest[0] as BufferEncoding) : 'utf8')
        : (chunk as Buffer);
    flow.data(0, bytes, context.now());
    if (cut) return false;
    let written = true;
    throttle.push(bytes.length, () => {
      if (cut) return;
      forwarded[0] += bytes.length;
      written = write(chunk, ...rest);
    });
    // A delayed write reports success: the throttle holds the request body paused meanwhile.
    return written;
  }) as typeof upstream.write;
  upstream.on('data', (chunk: Buffer) => {
    flow.data(1, chunk, context.now());
    // After a cut the client socket is destroyed, so the response parser's copy goes nowhere.
    if (!cut) forwarded[1] += chunk.length;
  });
  upstream.once('close', () => {
    throttle.dispose();
    flow.end(context.now(), cut ? 'cut' : 'fin');
  });

  // RFC 9112 section 3.2.2: a proxy replaces the client's Host with the request target's
  // authority, which also gives an HTTP/1.0 request without Host one for the HTTP/1.1 upstream.
  const headers = ['Host', url.host, ...withoutHost(endToEndHeaders(req.rawHeaders))];
  // The expectation goes on to the upstream, so an upstream that rejects the request before
  // reading the body (401, 403, 413, 501) responds before the client sends the body.
  if (expectContinue) headers.push('Expect', '100-continue');
  headers.push('Connection', 'close');
  const outgoing = httpRequest({
    method: req.method,
    path: `${url.pathname}${url.search}`,
    headers,
    setHost: false,
    createConnection: () => upstream,
  });
  let response: IncomingMessage | null = null;
  outgoing.on('error', (error: NodeJS.ErrnoException) => {
    if (cut) return;
    const code = error.code ?? 'ERROR';
    if (response !== null) {
      // The upstream responded and then stopped reading the body, as a server does when it
      // rejects an upload unread. Its response goes on to the client. The rest of the body is
      // read and dropped, because closing now could reset the client before it reads the response.
      context.log.info(
        { flow: flow.id, upstream: target, status: response.statusCode, code },
        'upstream closed after its response; rest of the request body dropped',
      );
      req.unpipe(outgoing);
      req.resume();
      return;
    }
    // NOTE: without Expect: 100-continue, an upstream that rejects an upload and resets the
    // connection can still lose its response to this write error, and the client gets a 502.
    failUpstream(context, flow.id, target, code, 'upstream request failed');
    if (!res.headersSent) {
      res.shouldKeepAlive = false;
      plainResponse(res, 502, `tollgate: upstream ${target} failed: ${code}\n`);
    } else {
      req.socket.destroy();
    }
  });

  let continueTimer: NodeJS.Timeout | undefined;
  let continued = false;
  const sendContinue = () => {
    clearTimeout(continueTimer);
    if (continued || response !== null || res.headersSent) return;
    continued = true;
    res.writeContinue();
  };
  outgoing.on('continue', sendContinue);
  outgoing.on('response', (incoming: IncomingMessage) => {
    clearTimeout(continueTimer);
    response = incoming;
    // A final response before the 100 (Continue) means the client never sends the body, so the
    // connection cannot carry another request.
    if (expectContinue && !continued) res.shouldKeepAlive = false;
    const responseHeaders = endToEndHeaders(incoming.rawHeaders);
    res.writeHead(incoming.statusCode ?? 502, incoming.statusMessage, responseHeaders);
    incoming.pipe(res);
    incoming.once('close', () => {
      if (incoming.complete || cut) return;
      failUpstream(context, flow.id, target, 'ECONNRESET', 'upstream response truncated');
      req.socket.destroy();
    });
  });
  if (expectContinue) {
    // The request head goes out now, because no body byte will come before the 100.
    outgoing.flushHeaders();
    // An upstream that ignores the expectation (an HTTP/1.0 server) never sends a 100 but may
    // wait for the body, so the proxy sends the 100 after EXPECT_CONTINUE_TIMEOUT_MS.
    continueTimer = setTimeout(sendContinue, EXPECT_CONTINUE_TIMEOUT_MS);
    upstream.once('close', () => clearTimeout(continueTimer));
  }
  req.pipe(outgoing);
}

/** Counts and logs an upstream that failed after the connection was made. */
function failUpstream(
  context: ProxyContext,
  flowId: string,
  target: string,
  code: string,
  message: string,
): void {
  context.stats.upstreamFailures++;
  context.log.warn({ flow: flowId, upstream: target, code }, message);
}
