// Child processes of the integration tests: run a tool to completion, kill a detached group.

import { type ChildProcess, execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `command` with `env` added to this process's environment and returns its exit code and
 * output; a non-zero exit does not throw. `maxBuffer` caps stdout and stderr in bytes, 1 MiB
 * by default as in execFile.
 */
export async function runTool(
  command: string,
  args: string[],
  env?: NodeJS.ProcessEnv,
  maxBuffer?: number,
): Promise<ToolResult> {
  try {
    const { stdout, stderr } = await run(command, args, {
      env: env === undefined ? process.env : { ...process.env, ...env },
      ...(maxBuffer === undefined ? {} : { maxBuffer }),
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/**
 * Sends SIGKILL to the process group of a child spawned with `detached: true`, so its own
 * children go too. A group that is already gone is ignored.
 */
export function killGroup(child: ChildProcess | null | undefined): void {
  if (child?.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {}
}

/** Reports whether `name` is on the PATH. */
export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}
