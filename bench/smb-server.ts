// Starts a real smbd for the SMB relay benchmark and the inline SMB integration test: its own
// smb.conf, private directories and password database under a work directory, one share, one
// user, on a random free port of ::1.
//
// smbd 4.17 binds only addresses that an interface carries (`bind interfaces only`), and the
// loopback interface carries 127.0.0.1 and ::1 alone, so a second loopback address such as
// 127.0.0.10 makes it abort with "No sockets available to bind to". ::1 is the address that
// differs from the client's 127.0.0.1 without changing the host's interfaces.
// Needs root: useradd and smbpasswd write the system and Samba user databases.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const SMB_USER = 'tgvendor';
export const SMB_PASSWORD = 'Vendor-Pass-2024';
export const SMB_SHARE = 'exports';

export interface SmbServer {
  host: string;
  port: number;
  /** Directory that the share named SMB_SHARE exports. */
  shareDir: string;
  /** smbd's log file, for a test to print when something fails. */
  logPath: string;
  stop(): Promise<void>;
}

export interface SmbServerOptions {
  /** Work directory for smb.conf, the password database, locks and logs. */
  dir: string;
  /** Directory the share exports; created when missing. */
  shareDir: string;
  host?: string;
}

/** Returns a port that was free on `host` a moment ago. */
export async function freePort(host: string): Promise<number> {
  const server = createServer();
  server.listen(0, host);
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error(`no port on ${host}`);
  return address.port;
}

/** Resolves once a TCP connection to host:port succeeds; rejects after `timeoutMs`. */
export async function waitForPort(host: string, port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect({ host, port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    await sleep(100);
  }
  throw new Error(`nothing listens on [${host}]:${port} after ${timeoutMs} ms`);
}

/** Writes smb.conf, adds the user and starts smbd in its own session (setsid). */
export async function startSmbServer(options: SmbServerOptions): Promise<SmbServer> {
  const host = options.host ?? '::1';
  const { dir, shareDir } = options;
  for (const name of ['private', 'lock', 'state', 'cache', 'pid', 'ncalrpc']) {
    mkdirSync(join(dir, name), { recursive: true });
  }
  mkdirSync(shareDir, { recursive: true });
  const port = await freePort(host);
  const logPath = join(dir, 'log.smbd');
  const confPath = join(dir, 'smb.conf');
  writeFileSync(
    confPath,
    `[global]
  workgroup = HOSPITAL
  netbios name = FILESRV
  server role = standalone server
  smb ports = ${port}
  interfaces = ${host}
  bind interfaces only = yes
  private dir = ${dir}/private
  lock directory = ${dir}/lock
  state directory = ${dir}/state
  cache directory = ${dir}/cache
  pid directory = ${dir}/pid
  ncalrpc dir = ${dir}/ncalrpc
  passdb backend = tdbsam:${dir}/private/passdb.tdb
  log file = ${logPath}
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
  server min protocol = SMB2_02
[${SMB_SHARE}]
  path = ${shareDir}
  read only = no
  force user = root
`,
  );

  try {
    execFileSync('id', [SMB_USER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', SMB_USER], {
      stdio: 'ignore',
    });
  }
  execFileSync('smbpasswd', ['-c', confPath, '-a', '-s', SMB_USER], {
    input: `${SMB_PASSWORD}\n${SMB_PASSWORD}\n`,
    stdio: ['pipe', 'ignore', 'pipe'],
  });

  // detached: true runs smbd in a new session, so it cannot signal the test's process group.
  const smbd: ChildProcess = spawn(
    'smbd',
    ['--foreground', '--no-process-group', '--debug-stdout', '-s', confPath],
    { detached: true, stdio: 'ignore' },
  );
  const exited = once(smbd, 'exit');
  try {
    await waitForPort(host, port);
  } catch (error) {
    stopProcessGroup(smbd);
    throw new Error(`smbd did not start; see ${logPath}`, { cause: error });
  }

  return {
    host,
    port,
    shareDir,
    logPath,
    async stop() {
      if (smbd.exitCode !== null || smbd.signalCode !== null) return;
      stopProcessGroup(smbd);
      await exited;
    },
  };
}

function stopProcessGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // The group has already exited.
  }
}
