// Event sinks: where finished events go. JSON Lines to a file or stream, and memory for tests.

import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';

export interface EventSink {
  /** Writes or queues one event and returns without waiting for I/O. */
  write(event: object): void;
  /** Flushes queued events and releases the sink's resources. */
  close(): Promise<void>;
}

/** Bytes of JSON lines kept in memory while the stream applies backpressure. */
export const DEFAULT_MAX_QUEUED_BYTES = 64 * 1024 * 1024;

export interface JsonLinesSinkOptions {
  /** Lines that would grow the queue past this many bytes are dropped and counted. */
  maxQueuedBytes?: number;
  /** End the stream on close(); true for files the sink opened itself. */
  endOnClose?: boolean;
}

/**
 * Writes one JSON object per line. While the stream reports backpressure (write() returned
 * false), lines wait in a queue bounded by maxQueuedBytes. Lines beyond it are dropped and
 * counted in `dropped`, because the engine must not stall on a slow SIEM forwarder.
 */
export class JsonLinesSink implements EventSink {
  private readonly queue: string[] = [];
  private queuedBytes = 0;
  private waitingForDrain = false;
  private closed = false;
  private failure: Error | null = null;
  private readonly maxQueuedBytes: number;
  private readonly endOnClose: boolean;
  private drainWaiters: Array<() => void> = [];
  /** Events dropped because the queue was full, the stream failed or the sink was closed. */
  dropped = 0;
  written = 0;

  constructor(
    private readonly stream: Writable,
    options: JsonLinesSinkOptions = {},
  ) {
    this.maxQueuedBytes = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    this.endOnClose = options.endOnClose ?? false;
    stream.on('error', (error: Error) => {
      this.failure ??= error;
      this.dropped += this.queue.length;
      this.queue.length = 0;
      this.queuedBytes = 0;
      this.releaseWaiters();
    });
  }

  /** Opens `path` for appending and returns a sink that closes the file on close(). */
  static toFile(
    path: string,
    options: Omit<JsonLinesSinkOptions, 'endOnClose'> = {},
  ): JsonLinesSink {
    return new JsonLinesSink(createWriteStream(path, { flags: 'a' }), {
      ...options,
      endOnClose: true,
    });
  }

  /** The first stream error, after which events are dropped. */
  get error(): Error | null {
    return this.failure;
  }

  write(event: object): void {
    if (this.closed || this.failure) {
      this.dropped++;
      return;
    }
    const line = `${JSON.stringify(event)}\n`;
    if (this.waitingForDrain) {
      if (this.queuedBytes + line.length > this.maxQueuedBytes) {
        this.dropped++;
        return;
      }
      this.queue.push(line);
      this.queuedBytes += line.length;
      return;
    }
    this.send(line);
  }

  private send(line: string): void {
    this.written++;
    if (!this.stream.write(line)) {
      this.waitingForDrain = true;
      this.stream.once('drain', () => this.flushQueue());
    }
  }

  private flushQueue(): void {
    this.waitingForDrain = false;
    while (this.queue.length > 0 && !this.waitingForDrain && !this.failure) {
      const line = this.queue.shift()!;
      this.queuedBytes -= line.length;
      this.send(line);
    }
    if (!this.waitingForDrain) this.releaseWaiters();
  }

  private releaseWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Waits for queued lines to reach the stream, then ends it when the sink owns it. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.waitingForDrain && !this.failure) {
      await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    }
    if (this.endOnClose && !this.failure) {
      await new Promise<void>((resolve, reject) => {
        this.stream.once('error', reject);
        this.stream.end(() => resolve());
      });
    }
    if (this.failure) throw this.failure;
  }
}

/** Keeps events in an array, for tests. */
export class MemorySink implements EventSink {
  readonly events: object[] = [];
  closed = false;

  write(event: object): void {
    if (this.closed) throw new Error('MemorySink: write after close');
    this.events.push(event);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
