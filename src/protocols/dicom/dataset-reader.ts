import type { DicomInstanceAttributes } from '../../engine/types.js';
import type { DatasetEncoding } from './constants.js';
import { DatasetHeadWalker, guessEncoding } from './dataset-head.js';

export type AttributesStatus = 'complete' | 'incomplete' | 'not-parsed';

/**
 * Keeps the first bytes of one dataset in a bounded head buffer and reads its leading attributes.
 * Bytes past the head are only counted. The head buffer is owned by the caller and reused for
 * every dataset of one direction, so a dataset costs no allocation.
 */
export class DatasetReader {
  bytes = 0;
  private headLength = 0;
  private walker: DatasetHeadWalker | undefined;
  /** True once the leading attributes are read or cannot be. */
  finished = false;
  private encoding: DatasetEncoding | undefined;

  /** `encoding` is undefined when the transfer syntax is unknown and must be guessed. */
  constructor(
    private readonly head: Buffer,
    encoding: DatasetEncoding | undefined,
  ) {
    this.encoding = encoding;
    if (encoding !== undefined && encoding !== 'deflated') {
      this.walker = new DatasetHeadWalker(encoding);
    }
  }

  /** Adds dataset bytes; returns true once the leading attributes are read or cannot be. */
  push(chunk: Buffer): boolean {
    this.bytes += chunk.length;
    if (this.finished || this.encoding === 'deflated') {
      return this.finished;
    }
    const take = Math.min(this.head.length - this.headLength, chunk.length);
    chunk.copy(this.head, this.headLength, 0, take);
    this.headLength += take;

    if (this.walker === undefined) {
      const guessed = guessEncoding(this.head, this.headLength);
      if (guessed === undefined) {
        return false;
      }
      this.encoding = guessed;
      this.walker = new DatasetHeadWalker(guessed);
    }
    const status = this.walker.resume(this.head, this.headLength);
    if (status !== 'need-more' || this.headLength === this.head.length) {
      this.finished = true;
    }
    return this.finished;
  }

  get attributes(): DicomInstanceAttributes {
    return this.walker?.attributes ?? {};
  }

  get status(): AttributesStatus {
    if (this.encoding === 'deflated') {
      return 'not-parsed';
    }
    return this.walker?.status === 'complete' ? 'complete' : 'incomplete';
  }

  /** The element that stopped the walk, when the dataset head could not be decoded. */
  get problem(): { tag: number; length: number; depth: number } | undefined {
    return this.walker?.problem;
  }

  get guessedEncoding(): DatasetEncoding | undefined {
    return this.encoding;
  }
}
