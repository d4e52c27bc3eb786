// The output of process warnings (process.emitWarning). By default each is one plain line on
// standard error. `tollgate run` sends them through its pino logger, so its standard error stays
// JSON lines.

import type { Logger } from 'pino';

/** The warning code the Pseudonymizer emits when no key is configured and it uses a random key. */
export const RANDOM_PSEUDONYM_KEY_WARNING = 'TOLLGATE_PSEUDONYM_KEY_RANDOM';

type WarningWriter = (warning: Error & { code?: string }) => void;

const writePlainLine: WarningWriter = (warning) => {
  process.stderr.write(`tollgate: warning: ${warning.message}\n`);
};

let writeWarning: WarningWriter = writePlainLine;

/** Writes a process warning the way the running command wants it; main.ts calls this. */
export function handleProcessWarning(warning: Error & { code?: string }): void {
  writeWarning(warning);
}

/**
 * Sends later process warnings to `log` as warn lines. The random pseudonym key warning is
 * skipped, because startGateway logs its own line for it, naming the gateway's key settings.
 */
export function logProcessWarnings(log: Logger): void {
  writeWarning = (warning) => {
    if (warning.code === RANDOM_PSEUDONYM_KEY_WARNING) return;
    log.warn({ code: warning.code, warning: warning.name }, warning.message);
  };
}

/** Restores plain-line warnings; for tests. */
export function writeProcessWarningsAsText(): void {
  writeWarning = writePlainLine;
}
