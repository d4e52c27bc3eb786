// Moves a relayed TCP socket onto one read buffer that it keeps until it closes (the buffer then
// goes to a pool), instead of a fresh 64 KiB buffer for every read. Node counts each fresh read buffer as V8 external
// memory until a garbage collection frees it. At 1 GB/s that is 64 MiB in about 60 ms. V8
// responds to that external memory pressure with a full (mark-compact) collection every 30 to
// 50 ms, which cost the gateway a third of its CPU (Node 20; see docs/benchmarks.md).
//
// Node reads into a caller's buffer only with the `onread` socket option, and only for sockets
// it constructs, not for the ones net.Server accepts. So the socket's libuv handle moves to a
// new net.Socket made with `onread`. The old Socket object stays behind without a handle and is
// destroyed when the new one closes. Its 'close' listeners, and net.Server's connection count,
// therefore still run once the connection is really over.
//
// The buffer is overwritten by the socket's next read. The caller must not keep a view of a
// chunk after its callback returns unless it pauses the socket until it has let go of the view.
// A write to another socket that did not complete at once is such a view (see `Splice.forward`).

import { Socket } from 'node:net';

export const READ_BUFFER_BYTES = 64 * 1024;

/**
 * Buffers of relays that closed, kept for the next ones. Allocating two fresh buffers per
 * connection would bring back the external memory pressure for short connections. The bound
 * keeps a burst of connections from pinning memory once it is over.
 */
const MAX_POOLED_BUFFERS = 256;
const pool: Buffer[] = [];

/**
 * Returns buffers to the pool. Call this only when nothing refers to them any more: after both
 * sockets of the relay emitted 'close', since a write to one socket may carry a view of the
 * other socket's buffer until then.
 */
export function releaseReadBuffers(buffers: readonly Buffer[]): void {
  for (const buffer of buffers) if (pool.length < MAX_POOLED_BUFFERS) pool.push(buffer);
}

/** Number of buffers in the pool (for tests). */
export function pooledReadBuffers(): number {
  return pool.length;
}

/** The part of net.Socket's private state the move relies on (Node 20). */
interface SocketInternals {
  _handle: object | null | undefined;
}

/**
 * Checks that `socket` can move to a reused read buffer. It must be an open TCP socket with no
 * unread data buffered and no write in flight that the old Socket object would have to complete.
 */
export function canMoveToReusedReadBuffer(socket: Socket): boolean {
  // A Node version without `_handle` gives undefined here, and keeps Node's own read buffers.
  const handle = (socket as unknown as SocketInternals)._handle;
  return (
    typeof handle === 'object' &&
    handle !== null &&
    !socket.destroyed &&
    !socket.connecting &&
    socket.readableLength === 0 &&
    socket.writableLength === 0 &&
    !socket.readableEnded &&
    !socket.writableEnded
  );
}

/**
 * Moves `socket`'s handle to a new socket that reads into one reused buffer and calls `onChunk`
 * with a view of each read. The caller checks canMoveToReusedReadBuffer first, and hands the
 * buffer to releaseReadBuffers when it is done with it. The new socket is paused and half-open.
 * The old one keeps no handle and is destroyed when the new one closes.
 */
export function moveToReusedReadBuffer(
  socket: Socket,
  onChunk: (chunk: Buffer) => void,
): { socket: Socket; buffer: Buffer } {
  const internals = socket as unknown as SocketInternals;
  const handle = internals._handle;
  const buffer = pool.pop() ?? Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
  internals._handle = null;

  const moved = new Socket({
    handle,
    allowHalfOpen: true,
    pauseOnCreate: true,
    onread: { buffer, callback: (bytes: number) => onChunk(buffer.subarray(0, bytes)) },
  } as ConstructorParameters<typeof Socket>[0]);
  moved.once('close', () => socket.destroy());
  return { socket: moved, buffer };
}
