// `tollgate config check FILE`: validates a gateway configuration and the policy it names.

import { ConfigReadError, ConfigValidationError, loadConfigFile } from '../config/load.js';
import { loadPolicyOption, UsageError } from './options.js';

export const EXIT_VALID = 0;
export const EXIT_INVALID = 1;
export const EXIT_UNREADABLE = 2;

/**
 * Checks the configuration at `path` and the policy it names. Writes a one-line summary to
 * `out` and returns 0 when both are valid; writes every error to `err` and returns 1 when either
 * is invalid, or 2 when the configuration file cannot be read.
 */
export function runConfigCheck(
  path: string,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): number {
  try {
    const config = loadConfigFile(path);
    const policy = loadPolicyOption(config.policyPath ?? undefined);
    const listeners = config.listeners
      .map(
        (listener) =>
          `${listener.name} (${listener.type} ${listener.listen.host}:${listener.listen.port})`,
      )
      .join(', ');
    out.write(`${path}: valid config: listeners ${listeners}; policy "${policy.name}"\n`);
    return EXIT_VALID;
  } catch (error) {
    if (error instanceof ConfigValidationError) {
      err.write(`${error.message}\n`);
      const count = error.errors.length;
      err.write(`${path}: invalid config, ${count} ${count === 1 ? 'error' : 'errors'}\n`);
      return EXIT_INVALID;
    }
    if (error instanceof ConfigReadError) {
      err.write(`${error.message}\n`);
      return EXIT_UNREADABLE;
    }
    if (error instanceof UsageError) {
      err.write(`${error.message}\n${path}: invalid policy named by the config\n`);
      return EXIT_INVALID;
    }
    throw error;
  }
}
