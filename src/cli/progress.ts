// A progress line on standard error while a large capture file is read to a terminal.

/** Files smaller than this finish too fast for a progress line to help. */
const MIN_SIZE_FOR_PROGRESS = 64 * 1024 * 1024;
const INTERVAL_MS = 1000;

export class ProgressLine {
  private readonly enabled: boolean;
  private nextUpdate = Date.now() + INTERVAL_MS;
  private readonly started = Date.now();
  private shown = false;

  constructor(
    private readonly stream: NodeJS.WritableStream,
    private readonly totalBytes: number | null,
  ) {
    const isTerminal = (stream as { isTTY?: boolean }).isTTY === true;
    this.enabled = isTerminal && totalBytes !== null && totalBytes >= MIN_SIZE_FOR_PROGRESS;
  }

  update(bytesRead: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now < this.nextUpdate) return;
    this.nextUpdate = now + INTERVAL_MS;

    const total = this.totalBytes ?? 1;
    const percent = Math.min(100, (bytesRead / total) * 100);
    const rate = bytesRead / 1e6 / Math.max((now - this.started) / 1000, 0.001);
    this.stream.write(
      `\rreading ${percent.toFixed(0)}% of ${(total / 1e6).toFixed(0)} MB, ${rate.toFixed(0)} MB/s   `,
    );
    this.shown = true;
  }

  clear(): void {
    if (this.shown) this.stream.write('\r\x1b[K');
  }
}
