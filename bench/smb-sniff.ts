// Sniff throughput on a large synthetic SMB2 READ capture next to the DICOM C-STORE capture of
// bench/dicom-capture.ts, both of the same size and measured in this run, printed as a ratio.
// The SMB run writes its events to a file and checks them against what the generator wrote,
// so a parser that skipped the READ data would fail here instead of looking fast.
// Usage (after `npm run build`; compiled like `npm run bench`):
//   tsc -p tsconfig.json --outDir .build && node .build/bench/smb-sniff.js [MEGABYTES] [ROUNDS]

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeDicomCapture } from './dicom-capture.js';
import { type SmbCaptureResult, writeSmbCapture } from './smb-capture.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'dist', 'cli', 'main.js');
const out = join(root, 'bench', 'out');

interface SniffRun {
  seconds: number;
  /** Rate from the first to the last capture record, as sniff's summary prints it. */
  engineMegabytesPerSecond: number | null;
  peakRssKb: number | null;
}

/** Runs `tollgate sniff` under /usr/bin/time, returning wall seconds, engine rate and peak RSS. */
function sniff(capture: string, events: string): SniffRun {
  const started = process.hrtime.bigint();
  const result = spawnSync(
    '/usr/bin/time',
    ['-f', '%M', process.execPath, cli, 'sniff', capture, '--events', events, '--include-phi'],
    { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (result.status !== 0) {
    throw new Error(`sniff ${capture} failed with status ${result.status}: ${result.stderr}`);
  }
  const lines = result.stderr.trim().split('\n');
  const rss = Number(lines.pop());
  const rate = /\((\d+) MB\/s\)/.exec(lines.join('\n'))?.[1];
  return {
    seconds,
    engineMegabytesPerSecond: rate === undefined ? null : Number(rate),
    peakRssKb: Number.isFinite(rss) ? rss : null,
  };
}

/** Fails unless the events list every generated file as read in full, with its bytes. */
function checkSmbEvents(path: string, generated: SmbCaptureResult): void {
  let files = 0;
  let bytesRead = 0;
  let readFully = 0;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line === '') continue;
    const event = JSON.parse(line);
    if (event.event.action !== 'smb-file-access') continue;
    files++;
    bytesRead += event.tollgate.smb.file.bytes_read;
    if (event.tollgate.smb.file.read_fully) readFully++;
  }
  if (
    files !== generated.files ||
    readFully !== generated.files ||
    bytesRead !== generated.fileDataBytes
  ) {
    throw new Error(
      `sniff reported ${files} files (${readFully} read fully, ${bytesRead} bytes); ` +
        `the capture has ${generated.files} files and ${generated.fileDataBytes} bytes`,
    );
  }
}

async function main(): Promise<void> {
  const megabytes = Number(process.argv[2] ?? 600);
  const rounds = Number(process.argv[3] ?? 3);
  mkdirSync(out, { recursive: true });
  const smbPath = join(out, `smb2-read-${megabytes}.pcap`);
  const dicomPath = join(out, `dicom-c-store-${megabytes}.pcap`);

  process.stdout.write(`writing ${smbPath} ...\n`);
  // Always regenerated, because the event check needs the generator's counts.
  const generated = await writeSmbCapture(smbPath, {
    targetBytes: megabytes * 1e6,
    fileBytes: 4 * 1024 * 1024 + 12_345,
    filesPerConnection: 100,
  });
  process.stdout.write(`${JSON.stringify(generated)}\n`);
  if (!existsSync(dicomPath)) {
    process.stdout.write(`writing ${dicomPath} ...\n`);
    const dicom = await writeDicomCapture(dicomPath, {
      targetBytes: megabytes * 1e6,
      pixelBytes: 512 * 1024,
      instancesPerAssociation: 100,
    });
    process.stdout.write(`${JSON.stringify(dicom)}\n`);
  }
  const smbBytes = statSync(smbPath).size;
  const dicomBytes = statSync(dicomPath).size;

  // Alternate the two inputs so that a slow moment of a shared machine hits both.
  const runs: { smb: SniffRun; dicom: SniffRun }[] = [];
  const smbEvents = join(out, 'smb-sniff-events.jsonl');
  for (let round = 0; round < rounds; round++) {
    // sniff appends to an existing events file.
    rmSync(smbEvents, { force: true });
    const smb = sniff(smbPath, smbEvents);
    checkSmbEvents(smbEvents, generated);
    const dicom = sniff(dicomPath, '/dev/null');
    runs.push({ smb, dicom });
  }

  const rate = (bytes: number, run: SniffRun) => bytes / 1e6 / run.seconds;
  process.stdout.write(
    `\nSMB capture ${(smbBytes / 1e6).toFixed(0)} MB, DICOM capture ${(dicomBytes / 1e6).toFixed(0)} MB\n`,
  );
  process.stdout.write(
    'round  SMB MB/s (engine)  DICOM MB/s (engine)  SMB/DICOM wall  SMB/DICOM engine  peak RSS SMB/DICOM\n',
  );
  runs.forEach(({ smb, dicom }, round) => {
    const smbRate = rate(smbBytes, smb);
    const dicomRate = rate(dicomBytes, dicom);
    const engineRatio =
      smb.engineMegabytesPerSecond !== null && dicom.engineMegabytesPerSecond !== null
        ? (smb.engineMegabytesPerSecond / dicom.engineMegabytesPerSecond).toFixed(2)
        : 'n/a';
    const rss = (run: SniffRun) =>
      run.peakRssKb === null ? '?' : `${(run.peakRssKb / 1024).toFixed(0)} MiB`;
    process.stdout.write(
      `${String(round + 1).padStart(5)}  ${smbRate.toFixed(0).padStart(8)} (${smb.engineMegabytesPerSecond ?? '?'})` +
        `  ${dicomRate.toFixed(0).padStart(10)} (${dicom.engineMegabytesPerSecond ?? '?'})` +
        `  ${(smbRate / dicomRate).toFixed(2).padStart(14)}  ${engineRatio.padStart(16)}  ${rss(smb)} / ${rss(dicom)}\n`,
    );
  });
  const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const ratios = runs.map(({ smb, dicom }) => rate(smbBytes, smb) / rate(dicomBytes, dicom));
  process.stdout.write(
    `median SMB ${median(runs.map(({ smb }) => rate(smbBytes, smb))).toFixed(0)} MB/s, ` +
      `DICOM ${median(runs.map(({ dicom }) => rate(dicomBytes, dicom))).toFixed(0)} MB/s, ` +
      `SMB/DICOM per round ${median(ratios).toFixed(2)}\n`,
  );
  process.stdout.write(
    '(wall rates include about 0.3 s of process start-up; engine rates are first to last record)\n',
  );
}

await main();
