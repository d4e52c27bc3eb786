// Sniff throughput on a large synthetic DICOM C-STORE capture, against a plain read of the same
// file and against tshark with a DICOM display filter, all measured in this run. Prints MB/s,
// packets/s, ratios and peak RSS. Usage (after `npm run build`):
//   npm run bench -- [CAPTURE.pcap] [MEGABYTES]

import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeDicomCapture } from './dicom-capture.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'dist', 'cli', 'main.js');

interface Run {
  name: string;
  seconds: number;
  peakRssKb: number | null;
  /** Standard error without the time line. */
  stderr: string;
}

/** Runs a command under /usr/bin/time, returning wall seconds and peak RSS. */
function timed(name: string, command: string, args: string[]): Run {
  const started = process.hrtime.bigint();
  const result = spawnSync('/usr/bin/time', ['-f', '%M', command, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (result.status !== 0 && result.status !== 3) {
    throw new Error(`${name} failed with status ${result.status}: ${result.stderr.slice(-500)}`);
  }
  const lines = result.stderr.trim().split('\n');
  const rss = Number(lines.pop());
  return { name, seconds, peakRssKb: Number.isFinite(rss) ? rss : null, stderr: lines.join('\n') };
}

function plainRead(path: string): Run {
  const buffer = Buffer.allocUnsafe(2 * 1024 * 1024);
  const started = process.hrtime.bigint();
  const fd = openSync(path, 'r');
  let checksum = 0;
  for (;;) {
    const length = readSync(fd, buffer, 0, buffer.length, null);
    if (length === 0) break;
    checksum = (checksum + (buffer[length - 1] ?? 0)) | 0;
  }
  closeSync(fd);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (checksum === 0.5) process.stdout.write('');
  return { name: 'plain read (node readSync)', seconds, peakRssKb: null, stderr: '' };
}

async function main(): Promise<void> {
  const [pathArgument, megabytes] = process.argv.slice(2);
  const path = pathArgument ?? join(root, 'bench', 'out', 'dicom-c-store.pcap');
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true });
    process.stdout.write(`writing ${path} ...\n`);
    const made = await writeDicomCapture(path, {
      targetBytes: Number(megabytes ?? 1100) * 1e6,
      pixelBytes: 512 * 1024,
      instancesPerAssociation: 100,
    });
    process.stdout.write(`${JSON.stringify(made)}\n`);
  }
  const bytes = statSync(path).size;
  const packets = countPackets(path);

  plainRead(path);
  const runs: Run[] = [plainRead(path)];
  runs.push(
    timed('tollgate sniff (DICOM parsing on)', process.execPath, [
      cli,
      'sniff',
      path,
      '--events',
      '/dev/null',
    ]),
  );
  runs.push(
    timed('tshark -r, DICOM display filter', 'tshark', [
      '-r',
      path,
      '-o',
      'tcp.reassemble_out_of_order:TRUE',
      '-d',
      'tcp.port==104,dicom',
      '-Y',
      'dicom',
    ]),
  );

  const sniff = runs[1]!;
  process.stdout.write(`\ncapture: ${path}: ${(bytes / 1e6).toFixed(0)} MB, ${packets} packets\n`);
  for (const run of runs) {
    const rss = run.peakRssKb === null ? '' : `, peak RSS ${(run.peakRssKb / 1024).toFixed(0)} MiB`;
    process.stdout.write(
      `${run.name.padEnd(36)} ${(bytes / 1e6 / run.seconds).toFixed(0).padStart(6)} MB/s ` +
        `${(packets / run.seconds / 1e3).toFixed(0).padStart(6)} kpackets/s  ` +
        `sniff/this ${(run.seconds / sniff.seconds).toFixed(2)}${rss}\n`,
    );
  }
  process.stdout.write(
    '(sniff/this > 1 means sniff is faster; wall times include process start-up)\n',
  );
  const engineRate = /\((\d+) MB\/s\)/.exec(sniff.stderr)?.[1];
  if (engineRate !== undefined) {
    process.stdout.write(
      `tollgate sniff from first to last record, without start-up: ${engineRate} MB/s\n`,
    );
  }
}

/** Counts pcap records by walking the record headers. */
function countPackets(path: string): number {
  const fd = openSync(path, 'r');
  const header = Buffer.alloc(16);
  let position = 24;
  let count = 0;
  while (readSync(fd, header, 0, 16, position) === 16) {
    position += 16 + header.readUInt32LE(8);
    count++;
  }
  closeSync(fd);
  return count;
}

await main();
