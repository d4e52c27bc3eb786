// HTTP/1.x exchange tracking (RFC 9112): pairs pipelined requests with their responses and
// reports one 'http-request' observation per exchange.

import type {
  Analyzer,
  AnalyzerSink,
  FlowView,
  Millis,
  Observation,
  Side,
} from '../../engine/types.js';
import { hostFromAuthority } from './host.js';
import { DEFAULT_HTTP_LIMITS, type HttpAnomaly, type HttpLimits } from './limits.js';
import { type BodyFraming, isToken, type MessageHead, MessageParser } from './message-parser.js';

type HttpRequestObservation = Extract<Observation, { kind: 'http-request' }>;

/** One request and what is known of its response so far. */
interface Exchange {
  fields: HttpRequestObservation;
  /** True when the request used HEAD, so the response has no body. */
  head: boolean;
  connect: boolean;
}

export class HttpAnalyzer implements Analyzer {
  readonly protocol = 'http' as const;
  private readonly requests: MessageParser;
  private readonly responses: MessageParser;
  /** Requests waiting for their final response, oldest first. */
  private readonly awaiting: Exchange[] = [];
  /** The request whose body the initiator is sending, which may already have a response. */
  private sending: Exchange | null = null;
  private remoteNameSent = false;
  private stopped = false;
  /** True once a gap broke the pairing of requests and responses on this flow. */
  private pairingLost = false;
  /** True while the response being parsed answers a request that was never seen. */
  private unpairedResponse = false;

  constructor(
    _flow: FlowView,
    private readonly sink: AnalyzerSink,
    private readonly limits: HttpLimits = DEFAULT_HTTP_LIMITS,
  ) {
    this.requests = new MessageParser(
      {
        head: (head, ts) => this.requestHead(head, ts),
        body: (bytes) => {
          if (this.sending !== null) this.sending.fields.requestBodyBytes += bytes;
        },
        messageEnd: () => {
          this.sending = null;
        },
        anomaly: (name, ts, details, fatal) => this.report(name, ts, details, fatal),
      },
      limits,
    );
    this.responses = new MessageParser(
      {
        head: (head, ts) => this.responseHead(head, ts),
        body: (bytes) => {
          const exchange = this.awaiting[0];
          if (exchange !== undefined && !this.unpairedResponse) {
            exchange.fields.responseBodyBytes += bytes;
          }
        },
        messageEnd: (ts) => {
          if (this.unpairedResponse) {
            this.unpairedResponse = false;
          } else {
            this.finishExchange(ts);
          }
        },
        anomaly: (name, ts, details, fatal) => this.report(name, ts, details, fatal),
      },
      limits,
    );
  }

  data(side: Side, chunk: Buffer, ts: Millis): void {
    if (this.stopped) return;
    if (side === 0) {
      this.requests.feed(chunk, ts);
    } else {
      this.responses.feed(chunk, ts);
    }
  }

  gap(side: Side, length: number, ts: Millis): void {
    if (this.stopped) return;
    const parser = side === 0 ? this.requests : this.responses;
    if (parser.gap(length, ts)) return;
    this.sink.anomaly('http.gap', ts, { side, bytes: length });
    this.pairingLost = true;
    if (side === 0) {
      // Requests read before the gap keep their place in the queue, so their responses still
      // pair with them.
      // NOTE: responses to requests lost inside the gap pair with the next requests read.
      this.sending = null;
      this.requests.resync('request');
      return;
    }
    // The lost bytes may hold the responses of any waiting request, so none of them can be
    // paired any more.
    this.reportAwaitingIncomplete(ts);
    this.unpairedResponse = false;
    this.responses.resync('response');
  }

  end(ts: Millis): void {
    if (
      !this.stopped &&
      this.responses.readingUntilClose &&
      !this.unpairedResponse &&
      this.awaiting.length > 0
    ) {
      this.finishExchange(ts);
    }
    this.reportAwaitingIncomplete(ts);
    this.stop();
  }

  private reportAwaitingIncomplete(ts: Millis): void {
    for (const exchange of this.awaiting) {
      exchange.fields.incomplete = true;
      this.sink.observe({ ...exchange.fields }, ts);
    }
    this.awaiting.length = 0;
    this.sending = null;
  }

  private requestHead(head: MessageHead, ts: Millis): BodyFraming {
    const [method, target, version] = head.startLine;
    if (
      !isToken(Buffer.from(method, 'latin1')) ||
      target === '' ||
      !/^HTTP\/1\.[01]$/.test(version)
    ) {
      this.fail('http.bad_request_line', ts, {
        methodChars: method.length,
        targetChars: target.length,
        version: version.slice(0, 16),
      });
      return { kind: 'count-only' };
    }
    if (this.awaiting.length >= this.limits.maxPipelineDepth) {
      this.fail('http.pipeline_too_deep', ts, {
        depth: this.awaiting.length + 1,
        limit: this.limits.maxPipelineDepth,
      });
      return { kind: 'count-only' };
    }

    const chunked = head.transferCodings !== undefined;
    const exchange: Exchange = {
      fields: {
        kind: 'http-request',
        method,
        target: target.slice(0, this.limits.maxTargetChars),
        chunked: chunked && head.transferCodings?.at(-1) === 'chunked',
        requestBodyBytes: 0,
        responseBodyBytes: 0,
        incomplete: false,
      },
      head: method === 'HEAD',
      connect: method === 'CONNECT',
    };
    if (head.host !== undefined) exchange.fields.host = head.host;
    if (head.userAgent !== undefined) exchange.fields.userAgent = head.userAgent;
    if (head.contentType !== undefined) exchange.fields.contentType = head.contentType;
    if (head.contentLength !== undefined) exchange.fields.contentLength = head.contentLength;
    this.awaiting.push(exchange);
    this.sending = exchange;
    this.reportRemoteName(exchange, head, ts);
    this.reportRequestHead(exchange, ts);

    if (exchange.connect) {
      // NOTE: bytes after a CONNECT head are counted only, also when the proxy rejects the
      // CONNECT and the client goes on with plain requests.
      return { kind: 'count-only' };
    }
    if (head.transferCodings !== undefined) {
      // RFC 9112 section 6.1: a request with Transfer-Encoding not ending in chunked is invalid.
      if (!exchange.fields.chunked) {
        this.fail('http.bad_transfer_encoding', ts, { codings: head.transferCodings.length });
        return { kind: 'count-only' };
      }
      if (head.contentLength !== undefined) {
        this.sink.anomaly('http.ambiguous_length', ts, { contentLength: head.contentLength });
      }
      return { kind: 'chunked' };
    }
    if (head.contentLength !== undefined) return { kind: 'length', length: head.contentLength };
    return { kind: 'none' };
  }

  private responseHead(head: MessageHead, ts: Millis): BodyFraming {
    const [version, statusText] = head.startLine;
    const status = /^[0-9]{3}$/.test(statusText) ? Number(statusText) : Number.NaN;
    if (!/^HTTP\/1\.[01]$/.test(version) || !(status >= 100)) {
      this.fail('http.bad_status_line', ts, {
        versionChars: version.length,
        statusChars: statusText.length,
      });
      return { kind: 'count-only' };
    }
    const exchange = this.awaiting[0];
    if (exchange === undefined) {
      if (!this.pairingLost) {
        this.fail('http.unexpected_response', ts, { status });
        return { kind: 'count-only' };
      }
      // After a gap this answers a request that was lost: frame it and report nothing.
      // NOTE: a lost HEAD request makes its response look like one with a body.
      if (status === 101) {
        this.stop();
        return { kind: 'count-only' };
      }
      this.unpairedResponse = true;
      return status < 200 ? { kind: 'none' } : this.responseFraming(head, status, false, ts);
    }
    exchange.fields.responseStatus = status;

    // RFC 9110 section 15.2: 1xx responses are interim; the final response follows.
    if (status === 101 || (exchange.connect && status >= 200 && status < 300)) {
      this.finishExchange(ts);
      this.stop();
      return { kind: 'count-only' };
    }
    if (status < 200) return { kind: 'none' };
    return this.responseFraming(head, status, exchange.head, ts);
  }

  /** The body framing of a final response (RFC 9112 section 6.3). */
  private responseFraming(
    head: MessageHead,
    status: number,
    requestWasHead: boolean,
    ts: Millis,
  ): BodyFraming {
    // These responses end at the empty line after the header section.
    if (requestWasHead || status === 204 || status === 304) return { kind: 'none' };
    if (head.transferCodings !== undefined) {
      if (head.contentLength !== undefined) {
        this.sink.anomaly('http.ambiguous_length', ts, { contentLength: head.contentLength });
      }
      return head.transferCodings.at(-1) === 'chunked'
        ? { kind: 'chunked' }
        : { kind: 'until-close' };
    }
    if (head.contentLength !== undefined) return { kind: 'length', length: head.contentLength };
    return { kind: 'until-close' };
  }

  private finishExchange(ts: Millis): void {
    const exchange = this.awaiting[0];
    if (exchange === undefined) return;
    // An interim (1xx) response also ends with messageEnd; the exchange then stays open.
    const status = exchange.fields.responseStatus;
    if (status !== undefined && status < 200 && status !== 101) return;
    this.awaiting.shift();
    this.sink.observe({ ...exchange.fields }, ts);
  }

  private reportRequestHead(exchange: Exchange, ts: Millis): void {
    const { method, target, host, userAgent, contentLength } = exchange.fields;
    const observation: Extract<Observation, { kind: 'http-request-head' }> = {
      kind: 'http-request-head',
      method,
      target,
    };
    if (host !== undefined) observation.host = host;
    if (userAgent !== undefined) observation.userAgent = userAgent;
    if (contentLength !== undefined) observation.contentLength = contentLength;
    this.sink.observe(observation, ts);
  }

  private reportRemoteName(exchange: Exchange, head: MessageHead, ts: Millis): void {
    if (this.remoteNameSent) return;
    const authority = exchange.connect ? exchange.fields.target : head.host;
    if (authority === undefined) return;
    const name = hostFromAuthority(authority);
    if (name === null) return;
    this.remoteNameSent = true;
    this.sink.observe(
      { kind: 'remote-name', name, source: exchange.connect ? 'connect' : 'http-host' },
      ts,
    );
  }

  private report(
    name: HttpAnomaly,
    ts: Millis,
    details: Record<string, string | number>,
    fatal: boolean,
  ): void {
    if (fatal) {
      this.fail(name, ts, details);
    } else {
      this.sink.anomaly(name, ts, details);
    }
  }

  private fail(name: HttpAnomaly, ts: Millis, details: Record<string, string | number>): void {
    this.stop();
    this.sink.anomaly(name, ts, details);
  }

  private stop(): void {
    this.stopped = true;
    this.requests.stop();
    this.responses.stop();
  }
}
