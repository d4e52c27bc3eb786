// `tollgate policy check FILE`: validates a policy file and its lists without running anything.

import { loadPolicyFile, PolicyReadError, PolicyValidationError } from '../policy/load.js';

export const EXIT_VALID = 0;
export const EXIT_INVALID = 1;
export const EXIT_UNREADABLE = 2;

/**
 * Checks the policy at `path`. Writes a one-line summary to `out` and returns 0 when it is
 * valid, writes every error on its own line to `err` and returns 1 when it is invalid, and
 * returns 2 when the file cannot be read.
 */
export function runPolicyCheck(
  path: string,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): number {
  try {
    const policy = loadPolicyFile(path);
    const enabled = policy.rules.filter((rule) => rule.enabled).length;
    const networks = policy.protectedNetworks
      ? `${policy.protectedNetworks.size} protected networks`
      : 'protected networks from --protected';
    out.write(
      `${path}: valid policy "${policy.name}": ${policy.rules.length} rules (${enabled} enabled), ` +
        `${policy.lists.size} lists, ${networks}\n`,
    );
    return EXIT_VALID;
  } catch (error) {
    if (error instanceof PolicyValidationError) {
      err.write(`${error.message}\n`);
      const count = error.errors.length;
      err.write(`${path}: invalid policy, ${count} ${count === 1 ? 'error' : 'errors'}\n`);
      return EXIT_INVALID;
    }
    if (error instanceof PolicyReadError) {
      err.write(`${error.message}\n`);
      return EXIT_UNREADABLE;
    }
    throw error;
  }
}
