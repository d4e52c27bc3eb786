// `tollgate sniff`: reads a capture file, standard input or a live interface, runs the engine
// in span mode and writes events; ends with a summary on standard error.

import { statSync } from 'node:fs';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { newDecodeStats, PacketDecoder } from '../capture/decode.js';
import { type LiveCaptureSummary, startLiveCapture } from '../capture/live.js';
import {
  type CaptureStats,
  type Frame,
  newCaptureStats,
  openCaptureFile,
  readCapture,
  readCaptureFile,
} from '../capture/reader.js';
import { Engine } from '../engine/engine.js';
import { DEFAULT_TRACKER_LIMITS, TcpTracker } from '../engine/tcp-tracker.js';
import type { Pseudonymizer } from '../events/pseudonymize.js';
import { type EventSink, JsonLinesSink } from '../events/sink.js';
import { CidrSet } from '../policy/cidr.js';
import type { Policy } from '../policy/model.js';
import { PROTOCOLS } from '../protocols/registry.js';
import { createPseudonymizer, loadPolicyOption, UsageError } from './options.js';
import { ProgressLine } from './progress.js';
import { writeSummary } from './summary.js';
import { VERSION } from './version.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_INPUT_DAMAGED = 3;

export const SAMPLE_CAPTURE = fileURLToPath(
  new URL('../../samples/vendor-night.pcap', import.meta.url),
);

export interface SniffOptions {
  input?: string;
  interface?: string;
  bpf?: string;
  policy?: string;
  protected?: string;
  events?: string;
  includePhi?: boolean;
  pseudonymKeyFile?: string;
  summary?: boolean;
  maxFlows?: string;
  idleTimeout?: string;
}

export async function runSniff(
  options: SniffOptions,
  stdout: NodeJS.WritableStream,
  stderr: NodeJS.WritableStream,
): Promise<number> {
  let policy: Policy;
  let protectedNetworks: CidrSet;
  let tracker: { maxFlows: number; idleTimeoutMs: number };
  let pseudonymizer: Pseudonymizer;
  try {
    policy = loadPolicyOption(options.policy);
    protectedNetworks = protectedNetworksOption(options.protected, policy);
    tracker = trackerOptions(options);
    pseudonymizer = createPseudonymizer(options.includePhi === true, options.pseudonymKeyFile);
  } catch (error) {
    if (error instanceof UsageError) {
      stderr.write(`tollgate sniff: ${error.message}\n`);
      return EXIT_USAGE;
    }
    throw error;
  }

  const sink: EventSink =
    options.events === undefined || options.events === '-'
      ? new JsonLinesSink(stdout as never)
      : JsonLinesSink.toFile(options.events);
  const engine = new Engine({
    policy,
    protectedNetworks,
    sink,
    pseudonymizer,
    mode: 'span',
    protocols: PROTOCOLS,
    observer: { hostname: hostname(), version: VERSION },
  });
  const tcp = new TcpTracker(engine, { ...DEFAULT_TRACKER_LIMITS, ...tracker });
  const decodeStats = newDecodeStats();
  const decoder = new PacketDecoder(decodeStats);
  const captureStats = newCaptureStats();

  const source = openSource(options, stderr);
  if (typeof source === 'number') return source;

  const started = process.hrtime.bigint();
  const progress = new ProgressLine(stderr, source.size);
  let lastTs = 0;
  let failure: Error | null = null;
  const stopSignal = () => void source.stop?.();
  process.once('SIGINT', stopSignal);
  process.once('SIGTERM', stopSignal);

  try {
    const onFrame = (frame: Frame) => {
      const packet = decoder.decode(frame);
      if (frame.ts > lastTs) lastTs = frame.ts;
      if (packet !== null) tcp.packet(packet);
      progress.update(captureStats.bytes);
    };
    if (source.path !== undefined) await readCaptureFile(source.path, onFrame, captureStats);
    else await readCapture(source.stream!, onFrame, captureStats);
  } catch (error) {
    failure = error as Error;
  } finally {
    process.off('SIGINT', stopSignal);
    process.off('SIGTERM', stopSignal);
  }

  const live = source.stop === undefined ? null : await source.stop();
  progress.clear();
  tcp.finish(lastTs);
  engine.finish(lastTs);
  await sink.close();

  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (options.summary !== false) {
    writeSummary(stderr, {
      engine,
      tcp,
      captureStats,
      decodeStats,
      seconds,
      live,
      input: source.label,
    });
  }
  if (failure !== null) {
    stderr.write(`tollgate sniff: ${failure.message}\n`);
    return EXIT_FAILED;
  }
  return inputDamaged(captureStats, engine, tcp) ? EXIT_INPUT_DAMAGED : EXIT_OK;
}

/** True when records were damaged, bytes were not captured or traffic did not parse. */
function inputDamaged(stats: CaptureStats, engine: Engine, tcp: TcpTracker): boolean {
  return (
    stats.truncatedRecords > 0 ||
    stats.corruptRecords > 0 ||
    tcp.counters.gapBytes > 0 ||
    engine.stats.anomalies.size > 0
  );
}

interface Source {
  /** A capture file, read with synchronous reads. */
  path?: string;
  /** Standard input or tcpdump's output. */
  stream?: NodeJS.ReadableStream;
  label: string;
  size: number | null;
  stop?: () => Promise<LiveCaptureSummary>;
}

function openSource(options: SniffOptions, stderr: NodeJS.WritableStream): Source | number {
  if (options.interface !== undefined) {
    if (options.input !== undefined) {
      stderr.write('tollgate sniff: give either a capture file or --interface, not both\n');
      return EXIT_USAGE;
    }
    try {
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
    } catch (error) {
      stderr.write(`tollgate sniff: ${(error as Error).message}\n`);
      return EXIT_FAILED;
    }
  }

  let path = options.input;
  if (path === undefined) {
    path = SAMPLE_CAPTURE;
    stderr.write(`tollgate sniff: no capture given, reading the bundled sample ${path}\n`);
  }
  let size: number | null = null;
  if (path !== '-') {
    try {
      size = statSync(path).size;
    } catch (error) {
      stderr.write(
        `tollgate sniff: cannot read capture file ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}\n`,
      );
      return EXIT_FAILED;
    }
  }
  if (path === '-') return { stream: openCaptureFile(path), label: 'standard input', size };
  return { path, label: path, size };
}

function protectedNetworksOption(text: string | undefined, policy: Policy): CidrSet {
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

function trackerOptions(options: SniffOptions): { maxFlows: number; idleTimeoutMs: number } {
  return {
    maxFlows: positiveInteger('--max-flows', options.maxFlows, DEFAULT_TRACKER_LIMITS.maxFlows),
    idleTimeoutMs:
      positiveInteger(
        '--idle-timeout',
        options.idleTimeout,
        DEFAULT_TRACKER_LIMITS.idleTimeoutMs / 1000,
      ) * 1000,
  };
}

function positiveInteger(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0)
    throw new UsageError(`${name} ${text} is invalid: expected a positive integer`);
  return value;
}
