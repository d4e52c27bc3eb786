// curl as the integration tests' HTTP and SOCKS5 client.

import { runTool, type ToolResult } from './processes.js';

export interface CurlResult extends ToolResult {
  /** Wall-clock time of the whole curl run in milliseconds. */
  ms: number;
}

export interface CurlOptions {
  /** curl's --max-time in seconds. */
  maxTime?: number;
  /** Largest stdout or stderr in bytes; execFile's default is 1 MiB. */
  maxBuffer?: number;
}

/** Runs `curl -sS --max-time N ...args`; a non-zero exit is returned in `code`, not thrown. */
export async function curl(args: string[], options: CurlOptions = {}): Promise<CurlResult> {
  const start = performance.now();
  const maxTime = String(options.maxTime ?? 20);
  const result = await runTool(
    'curl',
    ['-sS', '--max-time', maxTime, ...args],
    undefined,
    options.maxBuffer,
  );
  return { ...result, ms: performance.now() - start };
}
