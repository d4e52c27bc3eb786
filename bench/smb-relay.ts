// SMB READ throughput through the gateway's SMB relay against a plain Node relay
// (socket.pipe both ways) and against smbd directly, all in this run. smbclient gets one large
// sparse file from a real smbd on ::1 through each path in turn. The benchmark prints MB/s
// and the ratio to the plain relay. The gateway runs in this process with an alert-only
// bulk-copy rule, so the SMB analyzer and the rule meters see every READ but nothing is cut.
// Needs root (see smb-server.ts). Usage (after `npm run build`):
//   tsc -p tsconfig.json --outDir .build && node .build/bench/smb-relay.js [MEBIBYTES] [ROUNDS]

import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { freePort, SMB_PASSWORD, SMB_SHARE, SMB_USER, startSmbServer } from './smb-server.js';

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
// The gateway comes from dist/, like the CLI in the other benchmarks, so the build is measured.
const { startGateway }: typeof import('../src/cli/run.js') = await import(
  pathToFileURL(join(root, 'dist', 'cli', 'run.js')).href
);
const { loadConfigText }: typeof import('../src/config/load.js') = await import(
  pathToFileURL(join(root, 'dist', 'config', 'load.js')).href
);
const FILE_NAME = 'large-export.bin';

/** Starts a relay with no inspection that pipes each client socket to a new upstream socket. */
async function startPlainRelay(port: number, upstreamHost: string, upstreamPort: number) {
  const server: Server = createServer((client) => {
    const upstream = connect({ host: upstreamHost, port: upstreamPort, noDelay: true });
    client.setNoDelay(true);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return server;
}

/** Runs smbclient get to /dev/null and returns the wall seconds it took. */
async function timedGet(host: string, port: number): Promise<number> {
  const started = process.hrtime.bigint();
  await run(
    'smbclient',
    [
      `//${host}/${SMB_SHARE}`,
      '-p',
      String(port),
      '-U',
      `${SMB_USER}%${SMB_PASSWORD}`,
      '-m',
      'SMB3',
      '-c',
      `get ${FILE_NAME} /dev/null`,
    ],
    { timeout: 600_000 },
  );
  return Number(process.hrtime.bigint() - started) / 1e9;
}

async function main(): Promise<void> {
  const mebibytes = Number(process.argv[2] ?? 512);
  const rounds = Number(process.argv[3] ?? 5);
  const fileBytes = mebibytes * 1024 * 1024;
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-smb-relay-'));
  const shareDir = join(dir, 'share');
  const server = await startSmbServer({ dir: join(dir, 'smbd'), shareDir });
  // A sparse file: smbd reads zeros without touching the disk, so the network path is measured.
  writeFileSync(join(shareDir, FILE_NAME), '');
  truncateSync(join(shareDir, FILE_NAME), fileBytes);

  const gatewayPort = await freePort('127.0.0.1');
  const plainPort = await freePort('127.0.0.1');
  writeFileSync(
    join(dir, 'policy.yaml'),
    `version: 1
rules:
  - { id: bulk-copy-alert, name: More than 100 MB of files, kind: bulk-copy, action: alert, threshold: 100MB, per: user, window: hour }
`,
  );
  const config = loadConfigText(
    `version: 1
policy: policy.yaml
protected_networks: ["::1/128"]
source_networks: [127.0.0.1/32]
events: events.jsonl
listeners:
  - { name: smb, type: relay, listen: "127.0.0.1:${gatewayPort}", upstream: "[::1]:${server.port}", protocol: smb }
`,
    join(dir, 'gateway.yaml'),
    dir,
  );
  const gateway = await startGateway({ config, log: pino({ level: 'warn' }) });
  const plain = await startPlainRelay(plainPort, server.host, server.port);

  const paths = [
    { name: 'smbd directly', host: server.host, port: server.port },
    { name: 'plain Node relay (pipe)', host: '127.0.0.1', port: plainPort },
    { name: 'tollgate SMB relay', host: '127.0.0.1', port: gatewayPort },
  ];
  const seconds = new Map<string, number[]>(paths.map(({ name }) => [name, []]));
  try {
    // One warm-up get per path, then the rounds alternate between the paths.
    for (const path of paths) await timedGet(path.host, path.port);
    for (let round = 0; round < rounds; round++) {
      for (const path of paths) seconds.get(path.name)!.push(await timedGet(path.host, path.port));
    }
  } finally {
    plain.close();
    await gateway.stop();
    await server.stop();
  }

  const median = (values: number[]) =>
    [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const plainMedian = median(seconds.get('plain Node relay (pipe)')!);
  process.stdout.write(
    `\nsmbclient -m SMB3 get of a ${mebibytes} MiB sparse file, ${rounds} rounds, median\n`,
  );
  for (const { name } of paths) {
    const times = seconds.get(name)!;
    const rate = fileBytes / 1e6 / median(times);
    process.stdout.write(
      `${name.padEnd(26)} ${rate.toFixed(0).padStart(6)} MB/s  ` +
        `relative to the plain relay ${(plainMedian / median(times)).toFixed(2)}  ` +
        `(runs: ${times.map((t) => (fileBytes / 1e6 / t).toFixed(0)).join(', ')} MB/s)\n`,
    );
  }

  // Every get through the gateway must show up as a file read in full, or the analyzer missed
  // READ data and the figure above does not measure inspection.
  const fullReads = readFileSync(join(dir, 'events.jsonl'), 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line))
    .filter(
      (event) =>
        event.event.action === 'smb-file-access' &&
        event.tollgate.smb.file.bytes_read === fileBytes &&
        event.tollgate.smb.file.read_fully === true,
    ).length;
  process.stdout.write(`gateway events: ${fullReads} full reads of ${rounds + 1} gets\n`);
  if (fullReads !== rounds + 1) process.exitCode = 1;
  rmSync(dir, { recursive: true, force: true });
}

await main();
