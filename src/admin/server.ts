// The admin API's HTTP server (node:http): bearer-token authentication on every request,
// routing, and the limits that keep a slow or hostile client from holding it. The endpoints
// themselves are in handlers.ts.

import {
  createServer,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Listener } from '../config/load.js';
import type { HostPort } from '../config/schema.js';
import type { Gateway } from '../proxy/gateway.js';
import { health, type JsonResponse, meters, reload } from './handlers.js';
import { isLoopbackHost } from './loopback.js';
import { createAdminMetrics } from './metrics.js';
import type { PolicyReloadResult } from './reload.js';
import { BearerTokenChecker } from './token.js';

export interface AdminLimits {
  /** Largest request body accepted; larger ones get 413. No endpoint reads a body. */
  maxBodyBytes: number;
  /** Largest request head (request line and headers); larger ones get 431. */
  maxHeaderBytes: number;
  /** Time a client has to send the complete request head; then 408 and close. */
  headerTimeoutMs: number;
  /** Time a client has to send the complete request, body included. */
  requestTimeoutMs: number;
  /** Connections served at once; more are closed on accept. */
  maxConnections: number;
}

export const DEFAULT_ADMIN_LIMITS: AdminLimits = {
  maxBodyBytes: 4096,
  maxHeaderBytes: 8192,
  headerTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  maxConnections: 16,
};

export interface AdminServerOptions {
  listen: HostPort;
  /** Allows a listen address outside 127.0.0.0/8 and ::1 (config key allow_non_loopback). */
  allowNonLoopback: boolean;
  token: string;
  gateway: Gateway;
  /** The configured listeners, for their types in GET /health. */
  listeners: readonly Listener[];
  version: string;
  /** Reloads the policy, as SIGHUP does. */
  reload(): PolicyReloadResult;
  log: Logger;
  limits?: Partial<AdminLimits>;
}

type Route = {
  methods: readonly string[];
  handle(request: IncomingMessage, url: URL, response: ServerResponse): void;
};

export class AdminServer {
  readonly limits: AdminLimits;
  /** Requests rejected with 401, for the rate-limited log line. */
  unauthorized = 0;

  private readonly server: Server;
  private readonly checker: BearerTokenChecker;
  private readonly metrics: Registry;
  private readonly routes: Map<string, Route>;
  private readonly startedAt = Date.now();
  private bound: HostPort | null = null;

  constructor(private readonly options: AdminServerOptions) {
    this.limits = { ...DEFAULT_ADMIN_LIMITS, ...options.limits };
    this.checker = new BearerTokenChecker(options.token);
    this.metrics = createAdminMetrics(options.gateway);
    this.routes = this.buildRoutes();
    this.server = createServer(
      {
        maxHeaderSize: this.limits.maxHeaderBytes,
        headersTimeout: this.limits.headerTimeoutMs,
        requestTimeout: Math.max(this.limits.requestTimeoutMs, this.limits.headerTimeoutMs),
        // Node checks the two timeouts above at this interval, 30 s by default.
        connectionsCheckingInterval: Math.min(1000, this.limits.headerTimeoutMs),
      },
      (request, response) => this.handle(request, response),
    );
    this.server.maxConnections = this.limits.maxConnections;
  }

  /** The bound address, with the actual port when the configured port was 0. */
  get address(): HostPort {
    if (this.bound === null) throw new Error('the admin API is not listening');
    return this.bound;
  }

  /** Binds the listen address; rejects a non-loopback one unless allowNonLoopback is set. */
  async start(): Promise<void> {
    const { listen, allowNonLoopback, log } = this.options;
    if (!allowNonLoopback && !isLoopbackHost(listen.host)) {
      throw new Error(
        `admin address ${listen.host} is not a loopback address; set admin.allow_non_loopback: true to allow it`,
      );
    }
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(listen.port, listen.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const bound = this.server.address();
    const port = typeof bound === 'object' && bound !== null ? bound.port : listen.port;
    this.bound = { host: listen.host, port };
    this.server.on('error', (error) => log.error({ err: error }, 'admin API server error'));
    log.info({ host: listen.host, port }, 'admin API listening');
  }

  /** Stops accepting and closes open connections, including idle keep-alive ones. */
  async close(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
    this.options.log.info({ unauthorized: this.unauthorized }, 'admin API stopped');
  }

  private buildRoutes(): Map<string, Route> {
    const { gateway, listeners, version, log } = this.options;
    return new Map<string, Route>([
      [
        '/health',
        {
          methods: ['GET', 'HEAD'],
          handle: (_request, _url, response) =>
            sendJson(
              response,
              health({ gateway, listeners, version, startedAt: this.startedAt, now: Date.now() }),
            ),
        },
      ],
      [
        '/metrics',
        {
          methods: ['GET', 'HEAD'],
          handle: (_request, _url, response) => {
            this.metrics.metrics().then(
              (text) => send(response, 200, { 'Content-Type': this.metrics.contentType }, text),
              (error: unknown) => this.fail(response, error),
            );
          },
        },
      ],
      [
        '/meters',
        {
          methods: ['GET', 'HEAD'],
          handle: (_request, url, response) =>
            sendJson(response, meters(url.searchParams, gateway.engine, gateway.now())),
        },
      ],
      [
        '/reload',
        {
          methods: ['POST'],
          handle: (request, _url, response) => {
            const result = reload(() => this.options.reload());
            log.info(
              { client: request.socket.remoteAddress, status: result.status },
              'policy reload requested through the admin API',
            );
            sendJson(response, result);
          },
        },
      ],
    ]);
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    if (!this.checker.matches(request.headers.authorization)) {
      this.unauthorized++;
      // Logged at 1, 2, 4, 8 ... rejections, so a client guessing tokens cannot flood the log.
      if ((this.unauthorized & (this.unauthorized - 1)) === 0) {
        this.options.log.warn(
          { client: request.socket.remoteAddress, unauthorized: this.unauthorized },
          'admin API request without a valid token rejected',
        );
      }
      send(response, 401, { 'WWW-Authenticate': 'Bearer realm="tollgate"', Connection: 'close' });
      return;
    }

    // Only the path and query are used; an absolute-form target's host is ignored.
    let url: URL;
    try {
      url = new URL(request.url ?? '/', 'http://admin.invalid');
    } catch {
      sendJson(response, { status: 400, body: { error: 'invalid request target' } });
      return;
    }
    const route = this.routes.get(url.pathname);
    if (route === undefined) {
      sendJson(response, { status: 404, body: { error: 'not found' } });
      return;
    }
    const method = request.method ?? '';
    if (!route.methods.includes(method)) {
      response.setHeader('Allow', route.methods.join(', '));
      sendJson(response, {
        status: 405,
        body: { error: `method ${method} not allowed; use ${route.methods.join(' or ')}` },
      });
      return;
    }

    this.discardBody(request, response, () => {
      try {
        route.handle(request, url, response);
      } catch (error) {
        this.fail(response, error);
      }
    });
  }

  /**
   * Reads and drops the request body, then calls `next`. A body over maxBodyBytes (by its
   * Content-Length, or counted as chunks arrive) gets 413 and the connection is closed.
   */
  private discardBody(request: IncomingMessage, response: ServerResponse, next: () => void): void {
    const limit = this.limits.maxBodyBytes;
    const tooLarge = () =>
      sendJson(
        response,
        { status: 413, body: { error: `request body exceeds the maximum ${limit} bytes` } },
        { Connection: 'close' },
      );
    const declared = Number(request.headers['content-length'] ?? 0);
    if (declared > limit) {
      tooLarge();
      return;
    }
    let received = 0;
    let done = false;
    request.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > limit && !done) {
        done = true;
        request.pause();
        tooLarge();
      }
    });
    request.once('end', () => {
      if (done) return;
      done = true;
      next();
    });
    request.once('error', () => {
      done = true;
    });
  }

  private fail(response: ServerResponse, error: unknown): void {
    this.options.log.error({ err: error }, 'admin API request failed');
    if (response.headersSent) {
      response.destroy();
      return;
    }
    sendJson(response, { status: 500, body: { error: 'internal error; see the gateway log' } });
  }
}

/** Creates the admin API server and binds it. */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const server = new AdminServer(options);
  await server.start();
  return server;
}

function sendJson(
  response: ServerResponse,
  { status, body }: JsonResponse,
  headers: OutgoingHttpHeaders = {},
): void {
  send(
    response,
    status,
    { 'Content-Type': 'application/json; charset=utf-8', ...headers },
    `${JSON.stringify(body)}\n`,
  );
}

function send(
  response: ServerResponse,
  status: number,
  headers: OutgoingHttpHeaders,
  body = '',
): void {
  response.writeHead(status, {
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(body),
    ...headers,
  });
  response.end(body);
}
