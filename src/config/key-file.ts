// The pseudonym key file, named by `pseudonym_key_file` in the gateway configuration or by the
// --pseudonym-key-file option of `run` and `sniff`. It is read once, when the command starts.

import { readFileSync, statSync } from 'node:fs';
import {
  MIN_PSEUDONYM_KEY_BYTES,
  PseudonymKeyError,
  parsePseudonymKey,
} from '../events/pseudonymize.js';

/** Largest pseudonym key file read, in bytes. */
export const MAX_PSEUDONYM_KEY_FILE_BYTES = 4096;

/**
 * A pseudonym key and the file it was read from. The key is a private field, so logging or
 * serializing the configuration that carries it shows the file name only.
 */
export class PseudonymKeyFile {
  readonly #key: Buffer;

  constructor(
    readonly file: string,
    key: Buffer,
  ) {
    this.#key = key;
  }

  get key(): Buffer {
    return this.#key;
  }

  toJSON(): { file: string } {
    return { file: this.file };
  }
}

/**
 * Reads a pseudonym key file: surrounding whitespace is removed, then the text is parsed as
 * `hex:...`, `base64:...` or a passphrase of at least MIN_PSEUDONYM_KEY_BYTES bytes. Returns the
 * key, or a problem that names the file but never its content.
 */
export function readPseudonymKeyFile(file: string): PseudonymKeyFile | { problem: string } {
  let text: string;
  try {
    const stats = statSync(file);
    if (!stats.isFile()) return { problem: `pseudonym key file ${file} is not a regular file` };
    if (stats.size > MAX_PSEUDONYM_KEY_FILE_BYTES) {
      return {
        problem: `pseudonym key file ${file} is ${stats.size} bytes, more than the maximum ${MAX_PSEUDONYM_KEY_FILE_BYTES}`,
      };
    }
    text = readFileSync(file, 'utf8').trim();
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    return { problem: `cannot read the pseudonym key file ${file}: ${reason}` };
  }
  if (text === '') {
    return {
      problem: `pseudonym key file ${file} is empty; write a key of at least ${MIN_PSEUDONYM_KEY_BYTES} bytes`,
    };
  }
  try {
    return new PseudonymKeyFile(file, parsePseudonymKey(text));
  } catch (error) {
    // parsePseudonymKey names the length and the minimum, never the key.
    if (error instanceof PseudonymKeyError) {
      return { problem: `invalid key in pseudonym key file ${file}: ${error.message}` };
    }
    throw error;
  }
}
