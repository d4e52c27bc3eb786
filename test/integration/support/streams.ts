// Writable streams that keep what a command writes, for checking it afterwards.

import { Writable } from 'node:stream';

/** Collects everything written to it as text. */
export class TextCollector extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}
