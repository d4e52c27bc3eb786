// Closes a client connection the gateway refused or cut, without a TCP reset when the peer
// behaves: the last bytes (a DICOM A-ABORT or A-ASSOCIATE-RJ) and a FIN go out, what the peer
// still sends is read and dropped, and the socket is reset only if the peer has not closed
// after a grace time. A paused socket would otherwise never read the peer's FIN, never emit
// 'close', and keep its slot in the gateway's connection count until the process stops.

import type { Socket } from 'node:net';

/** How long a peer may take to close after the gateway's FIN before it is reset. */
export const CLOSE_GRACE_MS = 2000;

/** Sends `last` (if given) and a FIN, drops further input and resets after CLOSE_GRACE_MS. */
export function endGracefully(socket: Socket, last?: Buffer): void {
  if (socket.destroyed) return;
  if (last === undefined) socket.end();
  else socket.end(last);
  socket.on('data', () => {});
  socket.resume();

  const timer = setTimeout(() => {
    if (!socket.destroyed) socket.resetAndDestroy();
  }, CLOSE_GRACE_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}
