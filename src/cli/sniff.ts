// `tollgate sniff`: reads a capture file, standard input or a live interface, runs the engine
// in span mode and writes events; ends with a summary on standard error.

import { hostname } from 'node:os';
import { newDecodeStats, PacketDecoder } from '../capture/decode.js';
import { LiveCaptureError } from '../capture/live.js';
import {
  type CaptureStats,
  type Frame,
  newCaptureStats,
  readCapture,
  readCaptureFile,
} from '../capture/reader.js';
import { Engine } from '../engine/engine.js';
import { DEFAULT_TRACKER_LIMITS, TcpTracker } from '../engine/tcp-tracker.js';
import { PROTOCOLS } from '../protocols/registry.js';
import { createPseudonymizer, loadPolicyOption, UsageError } from './options.js';
import { ProgressLine } from './progress.js';
import {
  checkSourceOptions,
  InputError,
  openEventSink,
  openSource,
  protectedNetworksOption,
  type Source,
  trackerOptions,
} from './sniff-input.js';
import { writeSummary } from './summary.js';
import { VERSION } from './version.js';

export { SAMPLE_CAPTURE } from './sniff-input.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_INPUT_DAMAGED = 3;

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
  const say = (line: string) => stderr.write(`tollgate sniff: ${line}\n`);
  let setup: ReturnType<typeof prepare>;
  try {
    setup = prepare(options, stdout, say);
  } catch (error) {
    if (error instanceof UsageError) {
      say(error.message);
      return EXIT_USAGE;
    }
    if (error instanceof InputError || error instanceof LiveCaptureError) {
      say(error.message);
      return EXIT_FAILED;
    }
    throw error;
  }

  const { engine, tcp, sink, source } = setup;
  const decodeStats = newDecodeStats();
  const decoder = new PacketDecoder(decodeStats);
  const captureStats = newCaptureStats();
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

  // An input that could not be read at all has nothing to summarize.
  const readSomething = captureStats.packets > 0 || failure === null;
  if (options.summary !== false && readSomething) {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
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
    say(`${source.label}: ${failure.message}`);
    return EXIT_FAILED;
  }
  return inputDamaged(captureStats, engine, tcp) ? EXIT_INPUT_DAMAGED : EXIT_OK;
}

/** Validates the options and builds the engine, the TCP tracker, the sink and the source. */
function prepare(
  options: SniffOptions,
  stdout: NodeJS.WritableStream,
  say: (line: string) => void,
) {
  checkSourceOptions(options);
  const policy = loadPolicyOption(options.policy);
  const protectedNetworks = protectedNetworksOption(options.protected, policy);
  const tracker = trackerOptions(options);
  const pseudonymizer = createPseudonymizer(options.includePhi === true, options.pseudonymKeyFile);
  const sink = openEventSink(options.events, stdout);
  let source: Source;
  try {
    source = openSource(options, say);
  } catch (error) {
    void sink.close();
    throw error;
  }

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
  return { engine, tcp, sink, source };
}

/**
 * Anomalies that are not damage of their own: where a capture started, and the analyzers' view
 * of TCP gaps, which count through the tracker's gap bytes already.
 */
function informational(name: string): boolean {
  return name === 'dicom.midstream' || name.endsWith('.gap');
}

/** True when records were damaged, bytes were not captured or traffic did not parse. */
function inputDamaged(stats: CaptureStats, engine: Engine, tcp: TcpTracker): boolean {
  if (stats.truncatedRecords > 0 || stats.corruptRecords > 0 || tcp.counters.gapBytes > 0) {
    return true;
  }
  for (const name of engine.stats.anomalies.keys()) {
    if (!informational(name)) return true;
  }
  return false;
}
