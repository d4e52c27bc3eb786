// Inline-mode costs, measured in one run against two baselines: a direct connection and a plain
// Node relay (socket.pipe both ways, no inspection) in its own process, like the gateway.
//   - throughput of a DICOM C-STORE stream through a DICOM relay listener (analyzer on);
//   - throughput of a CONNECT tunnel through the HTTP proxy;
//   - connection set-up latency (connect, one byte echoed, close), p50 and p99;
//   - resident memory of the gateway with 1,000 concurrent relayed connections.
// The gateway is the built CLI (`node dist/cli/main.js run`), with an alert-only policy so the
// meters and rules run on every read but nothing is cut. The client and the sinks run in this
// process on 127.0.0.1 and 127.0.0.2. Usage:
//   npm run build && npx tsc -p tsconfig.json --outDir .build &&
//   node .build/bench/inline-relay.js [MEGABYTES] [ROUNDS] [CONNECTIONS]
// Set TOLLGATE_CPU_PROF=DIR to write a V8 CPU profile of the gateway to DIR, and
// TOLLGATE_TRACE_GC=FILE to write the gateway's garbage collections (--trace-gc) to FILE.

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { associate, commandSet, datasetHead, message, pdu } from './dicom-capture.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'dist', 'cli', 'main.js');
const SINK_HOST = '127.0.0.2';
const PIXEL_BYTES = 512 * 1024;
const TUNNEL_CHUNK_BYTES = 64 * 1024;
const CONCURRENT_CONNECTIONS = 1000;

type PathName = 'direct' | 'plain relay' | 'tollgate';
const PATHS: PathName[] = ['direct', 'plain relay', 'tollgate'];

async function freePort(host: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no port assigned');
  return address.port;
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve) => server.listen(port, SINK_HOST, resolve));
}

/**
 * A DICOM acceptor that reads PDU headers across chunk splits. It replies to the A-ASSOCIATE-RQ
 * with an A-ASSOCIATE-AC and to the A-RELEASE-RQ with an A-RELEASE-RP, and ignores P-DATA-TF.
 */
function dicomSink(): Server {
  return createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => {});
    const header = Buffer.alloc(6);
    let headerFill = 0;
    let bodyLeft = 0;
    socket.on('data', (chunk: Buffer) => {
      let offset = 0;
      while (offset < chunk.length) {
        if (bodyLeft > 0) {
          const take = Math.min(bodyLeft, chunk.length - offset);
          bodyLeft -= take;
          offset += take;
          continue;
        }
        const take = Math.min(6 - headerFill, chunk.length - offset);
        chunk.copy(header, headerFill, offset, offset + take);
        headerFill += take;
        offset += take;
        if (headerFill < 6) break;
        headerFill = 0;
        bodyLeft = header.readUInt32BE(2);
        const type = header[0];
        if (type === 0x01) socket.write(associate(2));
        if (type === 0x05) socket.end(pdu(0x06, Buffer.alloc(4)));
      }
    });
  });
}

/** Counts bytes and closes its side when the client half-closes. */
function countingSink(): Server {
  return createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    socket.resume();
    socket.on('end', () => socket.end());
  });
}

function echoSink(): Server {
  return createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => {});
    socket.pipe(socket);
  });
}

const PLAIN_RELAY_SCRIPT = `
import { connect, createServer } from 'node:net';
const routes = JSON.parse(process.argv[1]);
let waiting = routes.length;
for (const [listenPort, host, port] of routes) {
  createServer({ noDelay: true, allowHalfOpen: true }, (client) => {
    const upstream = connect({ host, port, noDelay: true, allowHalfOpen: true });
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  }).listen(listenPort, '127.0.0.1', () => {
    if (--waiting === 0) process.stdout.write('ready\\n');
  });
}
`;

interface Ports {
  dicomSink: number;
  countSink: number;
  echoSink: number;
  plainDicom: number;
  plainCount: number;
  plainEcho: number;
  gatewayDicom: number;
  gatewayProxy: number;
  gatewayEcho: number;
}

async function waitForOutput(child: ChildProcess, stream: 'stdout' | 'stderr', text: string) {
  let seen = '';
  const source = child[stream];
  if (source === null) throw new Error(`no ${stream} pipe`);
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes(text)) {
        source.off('data', onData);
        source.resume();
        resolve();
      }
    };
    source.on('data', onData);
    child.once('exit', (code) =>
      reject(new Error(`exited with ${code} before "${text}": ${seen}`)),
    );
  });
}

function startGateway(dir: string, ports: Ports): ChildProcess {
  writeFileSync(
    join(dir, 'policy.yaml'),
    `version: 1
rules:
  - { id: egress, name: Egress over 50 MB, kind: egress-threshold, action: alert, threshold: 50MB }
  - { id: bulk, name: Over 100 instances, kind: bulk-dicom, action: alert, instances: 100 }
`,
  );
  writeFileSync(
    join(dir, 'gw.yaml'),
    `version: 1
policy: policy.yaml
protected_networks: [127.0.0.1/32]
events: events.jsonl
listeners:
  - { name: dicom, type: relay, listen: "127.0.0.1:${ports.gatewayDicom}", upstream: "${SINK_HOST}:${ports.dicomSink}", protocol: dicom }
  - { name: echo, type: relay, listen: "127.0.0.1:${ports.gatewayEcho}", upstream: "${SINK_HOST}:${ports.echoSink}" }
  - { name: web, type: http-proxy, listen: "127.0.0.1:${ports.gatewayProxy}" }
limits: { max_connections: 10000, max_connections_per_source: 10000 }
`,
  );
  const profile = process.env.TOLLGATE_CPU_PROF;
  const gcTrace = process.env.TOLLGATE_TRACE_GC;
  const args = profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profile];
  if (gcTrace !== undefined) args.push('--trace-gc');
  return spawn(process.execPath, [...args, cli, 'run', '--config', join(dir, 'gw.yaml')], {
    stdio: ['ignore', gcTrace === undefined ? 'ignore' : openSync(gcTrace, 'w'), 'pipe'],
    env: { ...process.env, TOLLGATE_PSEUDONYM_KEY: 'b'.repeat(64) },
  });
}

function connectTo(port: number, host = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, noDelay: true, allowHalfOpen: true });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

async function writeAll(socket: Socket, chunk: Buffer, total: number): Promise<number> {
  let sent = 0;
  while (sent < total) {
    sent += chunk.length;
    if (!socket.write(chunk)) await once(socket, 'drain');
  }
  return sent;
}

/** Runs one association (C-STORE of 512 KiB instances until `bytes`) and returns MB/s. */
async function dicomTransfer(
  host: string,
  port: number,
  bytes: number,
  instance: Buffer,
): Promise<number> {
  const socket = await connectTo(port, host);
  socket.on('error', () => {});
  socket.write(associate(1));
  await once(socket, 'data');
  const started = process.hrtime.bigint();
  const sent = await writeAll(socket, instance, bytes);
  socket.write(pdu(0x05, Buffer.alloc(4)));
  socket.resume();
  // The acceptor sends A-RELEASE-RP and FIN once it has read everything.
  await once(socket, 'end');
  socket.destroy();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return sent / 1e6 / seconds;
}

/** Sends raw bytes until `bytes`, then FIN, and returns MB/s once the sink's FIN arrives. */
async function tunnelTransfer(path: PathName, ports: Ports, bytes: number): Promise<number> {
  const chunk = Buffer.alloc(TUNNEL_CHUNK_BYTES);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 2654435761) >>> 24;
  let socket: Socket;
  if (path === 'tollgate') {
    socket = await connectTo(ports.gatewayProxy);
    socket.write(
      `CONNECT ${SINK_HOST}:${ports.countSink} HTTP/1.1\r\nHost: ${SINK_HOST}:${ports.countSink}\r\n\r\n`,
    );
    const [reply] = (await once(socket, 'data')) as [Buffer];
    if (!reply.toString('latin1').startsWith('HTTP/1.1 200')) {
      throw new Error(`CONNECT failed: ${reply.toString('latin1').split('\r\n')[0]}`);
    }
  } else {
    socket =
      path === 'direct'
        ? await connectTo(ports.countSink, SINK_HOST)
        : await connectTo(ports.plainCount);
  }
  socket.on('error', () => {});
  const started = process.hrtime.bigint();
  const sent = await writeAll(socket, chunk, bytes);
  socket.end();
  socket.resume();
  await once(socket, 'close');
  return sent / 1e6 / (Number(process.hrtime.bigint() - started) / 1e9);
}

/** Measures milliseconds from connect() to the first echoed byte. */
/** Connections per path before the timed ones, so that JIT compilation is not timed. */
const LATENCY_WARMUP = 200;
/** The timed connections are split into batches, each with its own p99. */
const LATENCY_BATCHES = 5;

type Latencies = Record<PathName, number[]>;

/** Times `connections` set-ups per path, interleaving the paths, in LATENCY_BATCHES batches. */
async function measureLatencies(
  echoTarget: Record<PathName, [string, number]>,
  connections: number,
): Promise<Latencies[]> {
  for (let i = 0; i < LATENCY_WARMUP; i++) {
    for (const path of PATHS) await setupLatency(...echoTarget[path]);
  }

  const batches: Latencies[] = [];
  const perBatch = Math.ceil(connections / LATENCY_BATCHES);
  for (let done = 0; done < connections; done += perBatch) {
    const batch: Latencies = { direct: [], 'plain relay': [], tollgate: [] };
    for (let i = done; i < Math.min(connections, done + perBatch); i++) {
      for (const path of PATHS) batch[path].push(await setupLatency(...echoTarget[path]));
    }
    batches.push(batch);
  }
  return batches;
}

function mergeBatches(batches: Latencies[]): Latencies {
  const all: Latencies = { direct: [], 'plain relay': [], tollgate: [] };
  for (const batch of batches) for (const path of PATHS) all[path].push(...batch[path]);
  return all;
}

/**
 * Writes p50 and p99 per path, and the latency tollgate adds over each baseline. The p99 of a
 * few thousand loopback connections moves by milliseconds between runs on a shared VM, so the
 * added p99 is also given per batch: its median and range.
 */
function writeLatencies(
  out: NodeJS.WritableStream,
  connections: number,
  batches: Latencies[],
  all: Latencies,
): void {
  out.write(`\nset-up latency over ${connections} connections (ms)   p50     p99\n`);
  for (const path of PATHS) {
    out.write(
      `${path.padEnd(44)} ${percentile(all[path], 50).toFixed(3)}  ${percentile(all[path], 99).toFixed(3)}\n`,
    );
  }

  out.write(
    `\nadded by tollgate (ms)         p50     p99   p99 per batch of ${batches[0]?.tollgate.length ?? 0}: median (min to max)\n`,
  );
  for (const base of ['direct', 'plain relay'] as const) {
    const p50 = percentile(all.tollgate, 50) - percentile(all[base], 50);
    const p99 = percentile(all.tollgate, 99) - percentile(all[base], 99);
    const perBatch = batches.map(
      (batch) => percentile(batch.tollgate, 99) - percentile(batch[base], 99),
    );
    out.write(
      `${`over ${base}`.padEnd(28)} ${p50.toFixed(3).padStart(6)}  ${p99.toFixed(3).padStart(6)}   ${median(perBatch).toFixed(3)} (${Math.min(...perBatch).toFixed(3)} to ${Math.max(...perBatch).toFixed(3)})\n`,
    );
  }
}

async function setupLatency(host: string, port: number): Promise<number> {
  const started = process.hrtime.bigint();
  const socket = await connectTo(port, host);
  socket.write('x');
  await once(socket, 'data');
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  socket.destroy();
  return ms;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function median(values: number[]): number {
  return percentile(values, 50);
}

/** User plus system CPU seconds a process has used, from /proc (clock ticks of 10 ms). */
function cpuSecondsOf(pid: number): number {
  // Fields after the parenthesized command name; utime and stime are fields 14 and 15.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** VmRSS and VmHWM (peak) of a process, in MiB, from /proc. */
function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) / 1024;
  return { rss: field('VmRSS'), peak: field('VmHWM') };
}

/** Opens `count` connections through `port`, each with one 1 KiB echo, and keeps them open. */
async function holdConnections(port: number, count: number): Promise<Socket[]> {
  const sockets: Socket[] = [];
  const payload = Buffer.alloc(1024, 0x61);
  for (let i = 0; i < count; i += 100) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(100, count - i) }, async () => {
        const socket = await connectTo(port);
        socket.on('error', () => {});
        let echoed = 0;
        const done = new Promise<void>((resolve) =>
          socket.on('data', (data: Buffer) => {
            echoed += data.length;
            if (echoed >= payload.length) resolve();
          }),
        );
        socket.write(payload);
        await done;
        return socket;
      }),
    );
    sockets.push(...batch);
  }
  return sockets;
}

async function main(): Promise<void> {
  const megabytes = Number(process.argv[2] ?? 1000);
  const rounds = Number(process.argv[3] ?? 3);
  const connections = Number(process.argv[4] ?? 2000);
  const bytes = megabytes * 1e6;
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-inline-bench-'));
  const children: ChildProcess[] = [];
  const servers: Server[] = [];
  try {
    const ports: Ports = {
      dicomSink: await freePort(SINK_HOST),
      countSink: await freePort(SINK_HOST),
      echoSink: await freePort(SINK_HOST),
      plainDicom: await freePort('127.0.0.1'),
      plainCount: await freePort('127.0.0.1'),
      plainEcho: await freePort('127.0.0.1'),
      gatewayDicom: await freePort('127.0.0.1'),
      gatewayProxy: await freePort('127.0.0.1'),
      gatewayEcho: await freePort('127.0.0.1'),
    };
    const sinks: Array<[Server, number]> = [
      [dicomSink(), ports.dicomSink],
      [countingSink(), ports.countSink],
      [echoSink(), ports.echoSink],
    ];
    for (const [server, port] of sinks) {
      await listen(server, port);
      servers.push(server);
    }

    const plain = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        PLAIN_RELAY_SCRIPT,
        JSON.stringify([
          [ports.plainDicom, SINK_HOST, ports.dicomSink],
          [ports.plainCount, SINK_HOST, ports.countSink],
          [ports.plainEcho, SINK_HOST, ports.echoSink],
        ]),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(plain);
    await waitForOutput(plain, 'stdout', 'ready');
    const gateway = startGateway(dir, ports);
    children.push(gateway);
    await waitForOutput(gateway, 'stderr', 'gateway started');

    const dicomTarget: Record<PathName, [string, number]> = {
      direct: [SINK_HOST, ports.dicomSink],
      'plain relay': ['127.0.0.1', ports.plainDicom],
      tollgate: ['127.0.0.1', ports.gatewayDicom],
    };
    const echoTarget: Record<PathName, [string, number]> = {
      direct: [SINK_HOST, ports.echoSink],
      'plain relay': ['127.0.0.1', ports.plainEcho],
      tollgate: ['127.0.0.1', ports.gatewayEcho],
    };

    const uid = '1.2.826.0.1.3680043.10.999.8.1';
    const pixelHeader = Buffer.alloc(8);
    pixelHeader.writeUInt16LE(0x7fe0, 0);
    pixelHeader.writeUInt16LE(0x0010, 2);
    pixelHeader.writeUInt32LE(PIXEL_BYTES, 4);
    const dataset = Buffer.concat([
      datasetHead(1, uid),
      pixelHeader,
      Buffer.alloc(PIXEL_BYTES, 0x5a),
    ]);
    const instance = Buffer.concat([
      ...message(commandSet(uid, 1), true),
      ...message(dataset, false),
    ]);

    const dicomRates: Record<PathName, number[]> = { direct: [], 'plain relay': [], tollgate: [] };
    const tunnelRates: Record<PathName, number[]> = { direct: [], 'plain relay': [], tollgate: [] };
    /** CPU seconds per GB the relay process used, for the two relays. */
    const cpuPerGb: Record<'dicom' | 'tunnel', Record<PathName, number[]>> = {
      dicom: { direct: [], 'plain relay': [], tollgate: [] },
      tunnel: { direct: [], 'plain relay': [], tollgate: [] },
    };
    const relayPid: Record<PathName, number | null> = {
      direct: null,
      'plain relay': plain.pid!,
      tollgate: gateway.pid!,
    };
    const measured = async (
      path: PathName,
      kind: 'dicom' | 'tunnel',
      transfer: () => Promise<number>,
    ) => {
      const pid = relayPid[path];
      const before = pid === null ? 0 : cpuSecondsOf(pid);
      const rate = await transfer();
      if (pid !== null) cpuPerGb[kind][path].push((cpuSecondsOf(pid) - before) / (bytes / 1e9));
      return rate;
    };
    for (let round = 0; round < rounds; round++) {
      for (const path of PATHS) {
        const [host, port] = dicomTarget[path];
        dicomRates[path].push(
          await measured(path, 'dicom', () => dicomTransfer(host, port, bytes, instance)),
        );
        tunnelRates[path].push(
          await measured(path, 'tunnel', () => tunnelTransfer(path, ports, bytes)),
        );
      }
      process.stderr.write(`round ${round + 1} of ${rounds} done\n`);
    }

    const batches = await measureLatencies(echoTarget, connections);
    const latencies = mergeBatches(batches);

    const idleMemory = { plain: memoryOf(plain.pid!), gateway: memoryOf(gateway.pid!) };
    const heldPlain = await holdConnections(ports.plainEcho, CONCURRENT_CONNECTIONS);
    const plainHeld = memoryOf(plain.pid!);
    for (const socket of heldPlain) socket.destroy();
    const heldGateway = await holdConnections(ports.gatewayEcho, CONCURRENT_CONNECTIONS);
    const gatewayHeld = memoryOf(gateway.pid!);
    for (const socket of heldGateway) socket.destroy();

    const out = process.stdout;
    out.write(
      `machine: ${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}\n`,
    );
    out.write(`transfer size ${megabytes} MB, median of ${rounds} rounds\n\n`);
    out.write('throughput           MB/s  vs plain relay  vs direct\n');
    for (const [kind, rates] of [
      ['DICOM C-STORE', dicomRates],
      ['CONNECT tunnel', tunnelRates],
    ] as const) {
      const plainRate = median(rates['plain relay']);
      const directRate = median(rates.direct);
      for (const path of PATHS) {
        const rate = median(rates[path]);
        out.write(
          `${`${kind}, ${path}`.padEnd(28)} ${rate.toFixed(0).padStart(6)}  ${(rate / plainRate).toFixed(2).padStart(14)}  ${(rate / directRate).toFixed(2).padStart(9)}\n`,
        );
      }
    }
    out.write('\nrelay process CPU seconds per GB   plain relay  tollgate  ratio\n');
    for (const kind of ['dicom', 'tunnel'] as const) {
      const plainCpu = median(cpuPerGb[kind]['plain relay']);
      const gatewayCpu = median(cpuPerGb[kind].tollgate);
      out.write(
        `${(kind === 'dicom' ? 'DICOM C-STORE' : 'CONNECT tunnel').padEnd(34)} ${plainCpu.toFixed(2).padStart(11)}  ${gatewayCpu.toFixed(2).padStart(8)}  ${(gatewayCpu / plainCpu).toFixed(2).padStart(5)}\n`,
      );
    }
    writeLatencies(out, connections, batches, latencies);
    out.write(
      `\nmemory (MiB)                        idle RSS  RSS with ${CONCURRENT_CONNECTIONS}  peak (VmHWM)\n`,
    );
    out.write(
      `${'plain relay'.padEnd(36)} ${idleMemory.plain.rss.toFixed(0).padStart(8)}  ${plainHeld.rss.toFixed(0).padStart(13)}  ${plainHeld.peak.toFixed(0).padStart(12)}\n`,
    );
    out.write(
      `${'tollgate'.padEnd(36)} ${idleMemory.gateway.rss.toFixed(0).padStart(8)}  ${gatewayHeld.rss.toFixed(0).padStart(13)}  ${gatewayHeld.peak.toFixed(0).padStart(12)}\n`,
    );
    out.write('(tollgate peak includes the throughput runs above)\n');

    gateway.kill('SIGTERM');
    await once(gateway, 'exit');
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    for (const server of servers) server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
