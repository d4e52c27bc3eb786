// Closes a client connection the gateway refused or cut, without a TCP reset when the peer
// behaves: the last bytes (a DICOM A-ABORT or A-ASSOCIATE-RJ) and a FIN go out, what the peer
// still sends is read and dropped, and the socket is reset only if the peer has not closed
// after a grace time. A paused socket would otherwise never read the peer's FIN, never emit
// 'close', and keep its slot in the gateway's connection count until the process stops.

import type { Socket } from 'node:net';

/** How long a peer may take to close after the gateway's FIN before it is reset. */
export const CLOSE_GRACE_MS = 2000;

/**
 * Sends `last` (if given) and a FIN, drops further input and resets after CLOSE_GRACE_MS. With
 * `sink`, the socket that received this socket's data, input is read only once `sink` has sent
 * everything queued or closed: a socket that reads into a reused buffer would otherwise
 * overwrite bytes still waiting in `sink`'s queue.
 */
export function endGracefully(socket: Socket, last?: Buffer, sink?: Socket): void {
  if (socket.destroyed) return;
  if (last === undefined) socket.end();
  else socket.end(last);

  let reading = false;
  const dropInput = () => {
    if (reading) return;
    reading = true;
    socket.on('data', () => {});
    socket.resume();
  };
  if (sink === undefined || sink.destroyed || sink.writableLength === 0) {
    dropInput();
  } else {
    sink.once('finish', dropInput);
    sink.once('close', dropInput);
  }

  const timer = setTimeout(() => {
    if (!socket.destroyed) socket.resetAndDestroy();
  }, CLOSE_GRACE_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}
