// Option handling shared by the commands: the policy, the pseudonymizer and usage errors.

import { Pseudonymizer, PseudonymKeyError } from '../events/pseudonymize.js';
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

/** The pseudonymizer keyed from TOLLGATE_PSEUDONYM_KEY; `includePhi` keeps identifiers in clear. */
export function createPseudonymizer(includePhi: boolean): Pseudonymizer {
  try {
    return Pseudonymizer.fromEnv(includePhi);
  } catch (error) {
    if (error instanceof PseudonymKeyError) throw new UsageError(error.message, { cause: error });
    throw error;
  }
}
