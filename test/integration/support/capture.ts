// tcpdump on the loopback interface, started and stopped by a test.

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';

/** A tcpdump of loopback traffic matching a capture filter, written to `path`. */
export class LoopbackCapture {
  readonly child: ChildProcess;
  private stderrText = '';

  constructor(
    readonly path: string,
    filter: string,
  ) {
    this.child = spawn(
      'tcpdump',
      ['-i', 'lo', '--immediate-mode', '-U', '-B', '16384', '-s', '0', '-w', path, filter],
      { detached: true, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderrText += chunk.toString();
    });
  }

  /** What tcpdump wrote to standard error so far. */
  get stderr(): string {
    return this.stderrText;
  }

  /** Waits up to 5 s for tcpdump's "listening on" line; the caller checks `stderr`. */
  async waitForListening(): Promise<void> {
    for (let attempt = 0; attempt < 100 && !this.stderrText.includes('listening on'); attempt++) {
      await sleep(50);
    }
  }

  /** Waits for tcpdump's "listening on" line and throws when it does not come. */
  async started(): Promise<void> {
    await this.waitForListening();
    if (!this.stderrText.includes('listening on')) {
      throw new Error(`tcpdump did not start: ${this.stderrText}`);
    }
  }

  /** Stops tcpdump with SIGINT after a 1 s wait and resolves when it has exited. */
  async interrupt(): Promise<void> {
    // SIGINT ends tcpdump's loop without draining what the kernel still holds for it, so the
    // last segments and FINs would be missing from the file without this wait.
    await sleep(1000);
    const exited = once(this.child, 'exit');
    this.child.kill('SIGINT');
    await exited;
  }

  /** Stops tcpdump and throws when the kernel dropped packets. */
  async stop(): Promise<void> {
    await this.interrupt();
    if (!/^0 packets dropped by kernel/m.test(this.stderrText)) {
      throw new Error(`tcpdump dropped packets: ${this.stderrText}`);
    }
  }

  kill(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}
