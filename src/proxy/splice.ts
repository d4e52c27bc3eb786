// Relays bytes between a client socket and an upstream socket through an engine flow. Every
// chunk goes to the engine before it is forwarded, so a block verdict raised by that chunk
// stops it: the peer never receives bytes past the cut. Both sockets read into a buffer each
// that they reuse (reused-read-buffer.ts). Backpressure: when the kernel does not take a write
// at once, the socket that read the chunk is paused until the write completes. So at most one
// read per direction waits in memory, and no read overwrites a chunk still being sent.
// Half-close is passed on (FIN one way, data may still flow the other way). A throttle verdict
// delays the egress direction's chunks (see throttle.ts); the source stays paused while a chunk
// waits.

import type { Socket } from 'node:net';
import type { Engine } from '../engine/engine.js';
import type { EngineFlow } from '../engine/flow.js';
import type { FlowEndReason, Verdict } from '../engine/front-end.js';
import type { Millis, Side } from '../engine/types.js';
import { abortPdu, associateRejectFor, PduBoundaryTracker } from './dicom-pdu.js';
import { endGracefully } from './graceful-close.js';
import { raiseMallocTrimThreshold } from './malloc-trim.js';
import {
  canMoveToReusedReadBuffer,
  moveToReusedReadBuffer,
  releaseReadBuffers,
} from './reused-read-buffer.js';
import { EgressThrottle, type RateLimiterRegistry } from './throttle.js';

export interface SpliceServices {
  engine: Engine;
  now(): Millis;
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
  rateLimiters: RateLimiterRegistry;
}

export interface SpliceOptions {
  client: Socket;
  upstream: Socket;
  flow: EngineFlow;
  services: SpliceServices;
  idleTimeoutMs: number;
  /** Frame the streams as DICOM PDUs, so a cut sends A-ABORT or A-ASSOCIATE-RJ. */
  dicom: boolean;
  /** Client bytes read before the splice started (after a CONNECT or SOCKS request). */
  initialClientData?: Buffer;
  onClose?: () => void;
}

export class Splice {
  /** Bytes written to each peer: [to upstream, to client]. */
  readonly forwarded: [number, number] = [0, 0];
  private readonly sockets: [Socket, Socket];
  /** Per side: the write callback that resumes that side's socket once its chunk is sent. */
  private readonly afterWrite: [() => void, () => void];
  private readonly pdus: [PduBoundaryTracker, PduBoundaryTracker] | null;
  private finished = false;
  private reusedBuffers = false;
  /** The chunk the engine is looking at and its side, so a cut it raises can end its PDU. */
  private arrivingChunk: Buffer | null = null;
  private arrivingSide: Side = 0;
  private cut = false;
  private lastActivity: Millis;
  private idleTimer: NodeJS.Timeout | null = null;
  /** Delays the inside side's chunks under throttle verdicts; null for unmetered flows. */
  private readonly throttle: EgressThrottle | null = null;

  constructor(private readonly options: SpliceOptions) {
    const { flow } = options;
    this.sockets = this.adoptSockets(options.client, options.upstream);
    this.afterWrite = [() => this.resumeIfSinkFlushed(0), () => this.resumeIfSinkFlushed(1)];
    this.pdus = options.dicom ? [new PduBoundaryTracker(), new PduBoundaryTracker()] : null;
    this.lastActivity = options.services.now();

    const egressSide = flow.insideSide;
    if (egressSide !== null) {
      const source = this.sockets[egressSide];
      const sink = this.sockets[1 - egressSide]!;
      const throttle = new EgressThrottle({
        registry: options.services.rateLimiters,
        remoteIp: flow.remote.ip,
        now: () => options.services.now(),
        pauseSource: () => source.pause(),
        resumeSource: () => {
          if (!this.cut && sink.writableLength === 0) source.resume();
        },
      });
      this.throttle = throttle;
      flow.onThrottle((verdict) => {
        throttle.add(verdict);
        options.services.log.info(
          { flow: flow.id, rule: verdict.ruleId, bytesPerSecond: verdict.rateBytesPerSecond },
          'egress throttled',
        );
      });
    }
    flow.onBlock((verdict) => this.onBlock(verdict));
    this.wire(0);
    this.wire(1);
    this.armIdleTimer();
    if (options.initialClientData !== undefined && options.initialClientData.length > 0) {
      this.pass(0, options.initialClientData);
    }
    // A client that half-closed during a SOCKS handshake has had its 'end' already.
    if (this.sockets[0].readableEnded) this.passEnd(0);
    this.resumeIfSinkFlushed(0);
    this.resumeIfSinkFlushed(1);
  }

  /** Ends the relay gracefully: FIN to both peers (used when draining). */
  close(): void {
    for (const socket of this.sockets) socket.end();
  }

  /** True when both sockets read into reused buffers instead of emitting 'data'. */
  get readsIntoReusedBuffers(): boolean {
    return this.reusedBuffers;
  }

  /** Resets both peers and ends the flow with `reason`. */
  destroy(reason: FlowEndReason): void {
    for (const socket of this.sockets) if (!socket.destroyed) socket.resetAndDestroy();
    this.finish(reason);
  }

  private wire(side: Side): void {
    const source = this.sockets[side];
    const sink = this.sockets[1 - side]!;
    if (!this.reusedBuffers) source.on('data', (chunk: Buffer) => this.pass(side, chunk));
    source.on('end', () => this.passEnd(side));
    source.on('error', (error: NodeJS.ErrnoException) => {
      const reason: FlowEndReason = error.code === 'ECONNRESET' ? 'rst' : 'error';
      if (!this.cut) {
        this.options.services.log.info(
          {
            flow: this.options.flow.id,
            side: side === 0 ? 'client' : 'upstream',
            code: error.code,
          },
          'relayed connection failed',
        );
      }
      // A reset on one side is passed on as a reset to the other.
      if (!sink.destroyed) sink.resetAndDestroy();
      this.finish(reason);
    });
    source.on('close', () => {
      if (this.sockets[0].destroyed && this.sockets[1].destroyed) this.finish('fin');
    });
  }

  /** Passes a peer's FIN on to the other peer, after the chunks the throttle still holds. */
  private passEnd(side: Side): void {
    const sink = this.sockets[1 - side]!;
    if (this.cut || sink.destroyed) return;
    if (side === this.options.flow.insideSide && this.throttle !== null)
      this.throttle.push(0, () => sink.end());
    else sink.end();
  }

  private pass(side: Side, chunk: Buffer): void {
    if (this.cut || this.finished) return;
    this.lastActivity = this.options.services.now();
    this.arrivingChunk = chunk;
    this.arrivingSide = side;
    this.options.flow.data(side, chunk, this.lastActivity);
    this.arrivingChunk = null;
    // The engine may have raised a block verdict on this very chunk: then it is not forwarded.
    if (this.cut) return;

    // The closure is only made when the throttle may hold the chunk, not on every read.
    const throttle = side === this.options.flow.insideSide ? this.throttle : null;
    if (throttle !== null && !throttle.idle)
      throttle.push(chunk.length, () => this.forward(side, chunk));
    else this.forward(side, chunk);
  }

  private forward(side: Side, chunk: Buffer): void {
    if (this.cut || this.finished) return;
    this.pdus?.[side].feed(chunk);
    this.forwarded[side] += chunk.length;
    const sink = this.sockets[1 - side]!;
    sink.write(chunk, this.afterWrite[side]);
    // A write the kernel did not take at once still refers to the source's read buffer.
    if (sink.writableLength > 0) this.sockets[side].pause();
  }

  private resumeIfSinkFlushed(side: Side): void {
    if (this.cut || this.finished) return;
    if (this.sockets[1 - side]!.writableLength > 0) return;
    if (side === this.options.flow.insideSide && this.throttle?.holding) return;
    this.sockets[side].resume();
  }

  /**
   * Moves both sockets to reused read buffers, or neither. A socket that cannot move (because it
   * has unread data buffered, say) keeps Node's per-read buffers, which the collector frees.
   */
  private adoptSockets(client: Socket, upstream: Socket): [Socket, Socket] {
    if (!canMoveToReusedReadBuffer(client) || !canMoveToReusedReadBuffer(upstream)) {
      // Every read allocates a buffer; keep glibc from unmapping them between collections.
      raiseMallocTrimThreshold();
      return [client, upstream];
    }
    this.reusedBuffers = true;
    const moved = [
      moveToReusedReadBuffer(client, (chunk) => this.pass(0, chunk)),
      moveToReusedReadBuffer(upstream, (chunk) => this.pass(1, chunk)),
    ] as const;

    // Until both sockets closed, a pending write to one may refer to the other's buffer.
    let open = 2;
    for (const { socket } of moved) {
      socket.once('close', () => {
        if (--open === 0) releaseReadBuffers(moved.map(({ buffer }) => buffer));
      });
    }
    return [moved[0].socket, moved[1].socket];
  }

  private onBlock(verdict: Verdict): void {
    if (this.cut || this.finished) return;
    this.cut = true;
    const { flow, services } = this.options;
    const ts = services.now();
    const [client, upstream] = this.sockets;
    client.pause();
    upstream.pause();

    const rejectAssociation =
      this.pdus !== null && this.forwarded[0] === 0 && this.pdus[0].firstPduType <= 1;
    let answer: string;
    if (rejectAssociation) {
      // Nothing reached the upstream: reject the association the way a DICOM peer would.
      answer = 'a-associate-rj';
      endGracefully(client, associateRejectFor(verdict), upstream);
      this.reset(upstream);
    } else if (this.pdus !== null) {
      answer = 'a-abort';
      this.endArrivingPdu(this.pdus);
      // A-ABORT only where a PDU may start; a peer in the middle of a PDU is reset instead.
      this.abortOrReset(upstream, this.pdus[0], client);
      this.abortOrReset(client, this.pdus[1], upstream);
    } else {
      answer = 'reset';
      this.reset(client);
      this.reset(upstream);
    }

    services.engine.emitEnforcement(
      flow,
      ts,
      rejectAssociation ? 'connection-blocked' : 'transfer-cut',
      {
        rule: { id: verdict.ruleId, name: verdict.ruleName },
        tollgate: {
          enforcement: {
            answer,
            reason: verdict.eventAction,
            bytes_to_upstream: this.forwarded[0],
            bytes_to_client: this.forwarded[1],
          },
        },
      },
    );
    services.log.warn(
      { flow: flow.id, rule: verdict.ruleId, answer, bytesToUpstream: this.forwarded[0] },
      rejectAssociation ? 'association rejected' : 'transfer cut',
    );
    this.finish(rejectAssociation ? 'refused' : 'cut');
  }

  /**
   * Forwards the head of the chunk that raised the cut up to the end of the PDU its peer is in
   * the middle of, so that peer can take an A-ABORT next. A PDU that does not end within the
   * chunk is not completed, and its peer is reset instead. The bytes forwarded here come from
   * the chunk that crossed the threshold, so they stay within one read of it.
   */
  private endArrivingPdu(pdus: [PduBoundaryTracker, PduBoundaryTracker]): void {
    const chunk = this.arrivingChunk;
    if (chunk === null) return;
    const side = this.arrivingSide;
    const head = pdus[side].bytesToBoundary(chunk);
    const sink = this.sockets[1 - side]!;
    if (head <= 0 || sink.destroyed) return;

    // A copy: the source reads into its buffer again while it drains after the cut.
    const bytes = Buffer.from(chunk.subarray(0, head));
    pdus[side].feed(bytes);
    this.forwarded[side] += bytes.length;
    sink.write(bytes);
  }

  /** Sends `socket` an A-ABORT and FIN at a PDU boundary, else resets it. */
  private abortOrReset(socket: Socket, pdus: PduBoundaryTracker, sink: Socket): void {
    if (socket.destroyed) return;
    if (pdus.atBoundary) endGracefully(socket, abortPdu(), sink);
    else this.reset(socket);
  }

  /**
   * Resets a peer at a cut. The reset drops what Node still held for the peer, so that is taken
   * off the forwarded count. Bytes already in the kernel's send buffer are dropped too but
   * cannot be seen from here, so the count stays an upper bound.
   */
  private reset(socket: Socket): void {
    if (socket.destroyed) return;
    const side = socket === this.sockets[1] ? 0 : 1;
    this.forwarded[side] -= socket.writableLength;
    socket.resetAndDestroy();
  }

  private armIdleTimer(): void {
    const wait = Math.max(
      1,
      this.lastActivity + this.options.idleTimeoutMs - this.options.services.now(),
    );
    this.idleTimer = setTimeout(() => {
      if (this.finished) return;
      if (this.options.services.now() - this.lastActivity >= this.options.idleTimeoutMs) {
        this.options.services.log.info(
          { flow: this.options.flow.id },
          'relayed connection idle, closing',
        );
        this.destroy('idle-timeout');
      } else {
        this.armIdleTimer();
      }
    }, wait);
    this.idleTimer.unref();
  }

  private finish(reason: FlowEndReason): void {
    if (this.finished) return;
    this.finished = true;
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.throttle?.dispose();
    const flowReason = this.cut ? (this.options.flow.endReason ?? reason) : reason;
    this.options.flow.end(this.options.services.now(), flowReason);
    this.options.onClose?.();
  }
}
