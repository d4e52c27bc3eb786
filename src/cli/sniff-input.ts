// What `tollgate sniff` reads and writes: the capture source, the events output and the
// option values that size the engine. Every problem is a UsageError (exit 2) or, for an input
// that cannot be read, an InputError (exit 1), with a message naming the value.

import { closeSync, openSync, statSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type LiveCaptureSummary, startLiveCapture } from '../capture/live.js';
import { openCaptureFile } from '../capture/reader.js';
import { DEFAULT_TRACKER_LIMITS } from '../engine/tcp-tracker.js';
import { type EventSink, JsonLinesSink } from '../events/sink.js';
import { CidrSet } from '../policy/cidr.js';
import type { Policy } from '../policy/model.js';
import { UsageError } from './options.js';

export const SAMPLE_CAPTURE = fileURLToPath(
  new URL('../../samples/vendor-night.pcap', import.meta.url),
);

/** Connections tracked at once, at most: the table's slots are allocated up front. */
export const MAX_FLOWS_LIMIT = 10_000_000;

/** An input that cannot be read: sniff exits 1. */
export class InputError extends Error {
  readonly code = 'INPUT';
}

export interface SourceOptions {
  input?: string;
  interface?: string;
  bpf?: string;
}

export interface Source {
  /** A capture file, read with synchronous reads. */
  path?: string;
  /** Standard input or tcpdump's output. */
  stream?: NodeJS.ReadableStream;
  label: string;
  size: number | null;
  stop?: () => Promise<LiveCaptureSummary>;
}

/** Words for the file errors users meet, instead of bare errno codes. */
export function describeFileError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file or directory';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  if (code === 'ENOTDIR') return 'a parent is not a directory';
  return (error as Error).message;
}

/** Rejects option combinations that name no single source, before anything starts. */
export function checkSourceOptions(options: SourceOptions): void {
  if (options.interface !== undefined && options.input !== undefined) {
    throw new UsageError('give either a capture file or --interface, not both');
  }
  if (options.interface === undefined && options.bpf !== undefined) {
    throw new UsageError('--bpf filters a live capture: use it with --interface');
  }
}

/** Opens the capture file, standard input, the bundled sample or a live interface. */
export function openSource(options: SourceOptions, notice: (line: string) => void): Source {
  checkSourceOptions(options);
  if (options.interface !== undefined) {
    const live = startLiveCapture({
      interface: options.interface,
      ...(options.bpf ? { bpf: options.bpf } : {}),
    });
    return {
      stream: live.stream,
      label: `interface ${options.interface}`,
      size: null,
      stop: live.stop,
    };
  }
  if (options.input === '-') {
    return { stream: openCaptureFile('-'), label: 'standard input', size: null };
  }
  let path = options.input;
  if (path === undefined) {
    path = displayPath(SAMPLE_CAPTURE);
    notice(`no capture given, reading the bundled sample ${path}`);
  }
  let size: number;
  try {
    const stat = statSync(path);
    if (stat.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    size = stat.size;
  } catch (error) {
    throw new InputError(`cannot read capture file ${path}: ${describeFileError(error)}`);
  }
  return { path, label: path, size };
}

/** The path relative to the working directory when it lies below it, else as given. */
function displayPath(path: string): string {
  const shorter = relative(process.cwd(), path);
  return shorter.startsWith('..') || shorter === '' ? path : shorter;
}

/** Opens the events output: standard output for '-' or none, else a file to append to. */
export function openEventSink(path: string | undefined, stdout: NodeJS.WritableStream): EventSink {
  if (path === undefined || path === '-') return new JsonLinesSink(stdout as never);
  try {
    closeSync(openSync(path, 'a'));
  } catch (error) {
    throw new UsageError(`cannot open events file ${path}: ${describeFileError(error)}`);
  }
  return JsonLinesSink.toFile(path);
}

/** The inside networks: --protected when given, else the policy's. */
export function protectedNetworksOption(text: string | undefined, policy: Policy): CidrSet {
  if (text === undefined) {
    if (policy.protectedNetworks !== null) return policy.protectedNetworks;
    throw new UsageError(
      'no protected networks: give --protected CIDR,... or protected_networks in the policy',
    );
  }
  const entries = text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  if (entries.length === 0) throw new UsageError('--protected is empty: expected CIDR,...');
  try {
    return CidrSet.parse(entries);
  } catch (error) {
    throw new UsageError(`--protected: ${(error as Error).message}`);
  }
}

export function trackerOptions(options: { maxFlows?: string; idleTimeout?: string }): {
  maxFlows: number;
  idleTimeoutMs: number;
} {
  const idleSeconds = DEFAULT_TRACKER_LIMITS.idleTimeoutMs / 1000;
  return {
    maxFlows: positiveInteger(
      '--max-flows',
      options.maxFlows,
      DEFAULT_TRACKER_LIMITS.maxFlows,
      MAX_FLOWS_LIMIT,
    ),
    idleTimeoutMs:
      positiveInteger('--idle-timeout', options.idleTimeout, idleSeconds, 86_400) * 1000,
  };
}

function positiveInteger(
  name: string,
  text: string | undefined,
  fallback: number,
  maximum: number,
): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) {
    throw new UsageError(`${name} ${text} is invalid: expected a positive integer`);
  }
  if (value > maximum) throw new UsageError(`${name} ${text} exceeds the maximum ${maximum}`);
  return value;
}
