import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { afterAll, describe, expect, test } from 'vitest';
import { JsonLinesSink, MemorySink } from '../../../src/events/sink.js';

const dir = mkdtempSync(join(tmpdir(), 'tollgate-sink-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A writable that accepts one chunk at a time and completes it when release() is called. */
class SlowWritable extends Writable {
  readonly chunks: string[] = [];
  private pending: Array<() => void> = [];

  constructor() {
    super({ highWaterMark: 1 });
  }

  override _write(chunk: Buffer, _encoding: string, callback: () => void): void {
    this.chunks.push(chunk.toString());
    this.pending.push(callback);
  }

  release(): void {
    const callbacks = this.pending;
    this.pending = [];
    for (const callback of callbacks) callback();
  }
}

describe('JsonLinesSink', () => {
  test('writes one JSON object per line', async () => {
    const stream = new PassThrough();
    const sink = new JsonLinesSink(stream);
    sink.write({ a: 1 });
    sink.write({ b: 'two\nlines' });
    await sink.close();
    const lines = String(stream.read()).split('\n');
    expect(lines).toEqual(['{"a":1}', '{"b":"two\\nlines"}', '']);
  });

  test('file sink appends and flushes on close', async () => {
    const path = join(dir, 'events.jsonl');
    const first = JsonLinesSink.toFile(path);
    first.write({ n: 1 });
    await first.close();
    const second = JsonLinesSink.toFile(path);
    for (let n = 2; n <= 1000; n++) second.write({ n });
    await second.close();
    const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(1000);
    expect(JSON.parse(lines[999]!)).toEqual({ n: 1000 });
  });

  test('queues while the stream applies backpressure', async () => {
    const stream = new SlowWritable();
    const sink = new JsonLinesSink(stream);
    sink.write({ n: 1 });
    sink.write({ n: 2 });
    sink.write({ n: 3 });
    expect(stream.chunks).toEqual(['{"n":1}\n']);
    const closing = sink.close();
    while (stream.chunks.length < 3) {
      stream.release();
      await new Promise((resolve) => setImmediate(resolve));
    }
    stream.release();
    await closing;
    expect(stream.chunks.join('')).toBe('{"n":1}\n{"n":2}\n{"n":3}\n');
    expect(sink.dropped).toBe(0);
  });

  test('lowered queue limit drops and counts', async () => {
    const stream = new SlowWritable();
    const sink = new JsonLinesSink(stream, { maxQueuedBytes: 10 });
    sink.write({ n: 1 });
    sink.write({ n: 2 });
    sink.write({ n: 3 });
    sink.write({ n: 4 });
    expect(sink.dropped).toBe(2);
    const closing = sink.close();
    for (let i = 0; i < 5; i++) {
      stream.release();
      await new Promise((resolve) => setImmediate(resolve));
    }
    await closing;
    expect(stream.chunks.join('')).toBe('{"n":1}\n{"n":2}\n');
  });

  test('write after close is dropped', async () => {
    const stream = new PassThrough();
    const sink = new JsonLinesSink(stream);
    await sink.close();
    sink.write({ late: true });
    expect(sink.dropped).toBe(1);
    expect(stream.read()).toBeNull();
  });

  test('stream error is kept and reported by close', async () => {
    const failing = new Writable({
      write(_chunk, _encoding, callback) {
        callback(new Error('disk full'));
      },
    });
    const sink = new JsonLinesSink(failing);
    sink.write({ n: 1 });
    await new Promise((resolve) => setImmediate(resolve));
    sink.write({ n: 2 });
    expect(sink.error?.message).toBe('disk full');
    expect(sink.dropped).toBeGreaterThanOrEqual(1);
    await expect(sink.close()).rejects.toThrow('disk full');
  });
});

describe('MemorySink', () => {
  test('keeps events in order', async () => {
    const sink = new MemorySink();
    sink.write({ n: 1 });
    sink.write({ n: 2 });
    await sink.close();
    expect(sink.events).toEqual([{ n: 1 }, { n: 2 }]);
    expect(() => sink.write({ n: 3 })).toThrow('write after close');
  });
});
