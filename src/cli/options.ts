// Option handling shared by the commands: the policy, the pseudonymizer and usage errors.

import { readFileSync } from 'node:fs';
import { Pseudonymizer, PseudonymKeyError, parsePseudonymKey } from '../events/pseudonymize.js';
import {
  loadDefaultPolicy,
  loadPolicyFile,
  PolicyReadError,
  PolicyValidationError,
} from '../policy/load.js';
import type { Policy } from '../policy/model.js';

/** A bad option or configuration: the command prints the message and exits with status 2. */
export class UsageError extends Error {
  readonly code = 'USAGE';
}

/** Loads the policy named by --policy, or the embedded default policy. */
export function loadPolicyOption(path: string | undefined): Policy {
  try {
    return path === undefined ? loadDefaultPolicy() : loadPolicyFile(path);
  } catch (error) {
    if (error instanceof PolicyValidationError || error instanceof PolicyReadError) {
      throw new UsageError(error.message, { cause: error });
    }
    throw error;
  }
}

/**
 * Creates the pseudonymizer keyed from `keyFile` when given, else from TOLLGATE_PSEUDONYM_KEY;
 * `includePhi` keeps identifiers in clear. The key itself never appears in an error message.
 */
export function createPseudonymizer(includePhi: boolean, keyFile?: string): Pseudonymizer {
  try {
    if (keyFile === undefined) return Pseudonymizer.fromEnv(includePhi);
    return new Pseudonymizer(parsePseudonymKey(readKeyFile(keyFile)), includePhi);
  } catch (error) {
    if (error instanceof PseudonymKeyError) throw new UsageError(error.message, { cause: error });
    throw error;
  }
}

function readKeyFile(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new UsageError(`cannot read the pseudonym key file ${path}: ${code}`);
  }
}
