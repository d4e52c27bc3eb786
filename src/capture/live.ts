// Live capture through tcpdump, which writes classic pcap to its standard output.

import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { PassThrough } from 'node:stream';

export interface LiveCaptureOptions {
  interface: string;
  /** A BPF filter expression, passed to tcpdump as one argument after `--`. */
  bpf?: string;
  /** tcpdump executable, a path or a name looked up in PATH (default 'tcpdump'). */
  tcpdumpPath?: string;
}

/** tcpdump's closing statistics from its standard error. A count is -1 when tcpdump did not print it. */
export interface LiveCaptureSummary {
  captured: number;
  receivedByFilter: number;
  droppedByKernel: number;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** The last lines tcpdump wrote to standard error, at most STDERR_TAIL_BYTES. */
  stderr: string;
}

/** Raised when tcpdump cannot be started or cannot open the interface. */
export class LiveCaptureError extends Error {
  readonly code = 'CAPTURE_LIVE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LiveCaptureError';
  }
}

const STDERR_TAIL_BYTES = 4096;
const STOP_TIMEOUT_MS = 5000;
const INSTALL_HINT = 'install the tcpdump package (apt-get install tcpdump)';
const PERMISSION_HINT =
  'run as root or grant the capability: setcap cap_net_raw,cap_net_admin=eip $(command -v tcpdump)';

function findExecutable(name: string): string | null {
  const candidates = name.includes('/')
    ? [name]
    : (process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here or not executable: try the next directory.
    }
  }
  return null;
}

function readCount(stderr: string, label: string): number {
  const match = new RegExp(`(\\d+) packets? ${label}`).exec(stderr);
  return match === null ? -1 : Number(match[1]);
}

/**
 * Spawns `tcpdump -i IFACE -w - -U --immediate-mode -B 8192 -s 0 [filter]` and returns its pcap output and a
 * stop() that ends the capture and returns tcpdump's statistics. Throws a LiveCaptureError
 * when tcpdump is not found; a failure after start (no permission, unknown interface) is
 * emitted as a LiveCaptureError on the stream.
 */
export function startLiveCapture(options: LiveCaptureOptions): {
  stream: NodeJS.ReadableStream;
  stop(): Promise<LiveCaptureSummary>;
} {
  if (options.interface === '' || options.interface.startsWith('-')) {
    throw new LiveCaptureError(`interface name '${options.interface}' is invalid`);
  }
  const requested = options.tcpdumpPath ?? 'tcpdump';
  const executable = findExecutable(requested);
  if (executable === null) {
    throw new LiveCaptureError(`tcpdump not found at '${requested}': ${INSTALL_HINT}`);
  }

  // -U alone flushes each packet once tcpdump has it, but libpcap still holds packets in the
  // kernel ring until its 1 s timeout, and tcpdump drops those on SIGINT: --immediate-mode
  // hands each packet over at once.
  const args = [
    '-i',
    options.interface,
    '-w',
    '-',
    '-U',
    '--immediate-mode',
    '-B',
    '8192',
    '-s',
    '0',
  ];
  if (options.bpf !== undefined && options.bpf.trim() !== '') args.push('--', options.bpf);
  const child = spawn(executable, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  // tcpdump closes its output before its exit status is known. The returned stream therefore
  // ends only after the exit, so a failed start reaches the reader as an error, not as an empty
  // capture.
  const output = new PassThrough();
  child.stdout.pipe(output, { end: false });

  let stopping = false;
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => {
    stderr = (stderr + text).slice(-STDERR_TAIL_BYTES);
  });
  child.on('error', (error: NodeJS.ErrnoException) => {
    const hint = error.code === 'EACCES' ? PERMISSION_HINT : INSTALL_HINT;
    output.destroy(new LiveCaptureError(`tcpdump failed to start: ${hint}`, { cause: error }));
  });

  const exited = new Promise<LiveCaptureSummary>((resolve) => {
    child.on('close', (exitCode, signal) => {
      if (exitCode !== 0 && exitCode !== null && !stopping) {
        const denied = /permission|not permitted/i.test(stderr);
        const lastLine = stderr.trim().split('\n').pop() ?? '';
        const message = denied
          ? `tcpdump has no permission to capture on '${options.interface}': ${PERMISSION_HINT}`
          : `tcpdump failed to capture on '${options.interface}' (exit code ${exitCode}): ${lastLine}`;
        output.destroy(new LiveCaptureError(message));
      } else {
        output.end();
      }
      resolve({
        captured: readCount(stderr, 'captured'),
        receivedByFilter: readCount(stderr, 'received by filter'),
        droppedByKernel: readCount(stderr, 'dropped by kernel'),
        exitCode,
        signal,
        stderr,
      });
    });
  });

  return {
    stream: output,
    async stop() {
      stopping = true;
      if (child.exitCode === null && child.signalCode === null) {
        // SIGINT makes tcpdump flush its output and print the packet counts.
        child.kill('SIGINT');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        const summary = await exited;
        clearTimeout(timer);
        return summary;
      }
      return exited;
    },
  };
}
