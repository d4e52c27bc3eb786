// dcmtk helpers shared by the inline DICOM tests.

import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

/**
 * Starts storescp (dcmtk) on `port`, forking per association and writing received files to
 * `outputDir`. `bitPreserving` (+B) stores datasets exactly as they arrived on the wire.
 */
export function spawnStorescp(options: {
  aeTitle: string;
  outputDir: string;
  port: number;
  bitPreserving?: boolean;
}): ChildProcess {
  const args = ['-aet', options.aeTitle, '-od', options.outputDir];
  if (options.bitPreserving === true) args.push('+B');
  args.push('--fork', '-ll', 'error', String(options.port));
  return spawn('storescp', args, { detached: true, stdio: 'ignore' });
}

/** Hashes a DICOM file's dataset: the bytes after the 128-byte preamble, "DICM" and group 2. */
export function datasetSha256(path: string): string {
  const bytes = readFileSync(path);
  // (0002,0000) UL group length: tag at 132, VR at 136, length at 138, value at 140.
  const groupLength = bytes.readUInt32LE(140);
  return createHash('sha256')
    .update(bytes.subarray(144 + groupLength))
    .digest('hex');
}
