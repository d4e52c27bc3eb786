// Option handling shared by the commands: the policy, the pseudonymizer and usage errors.

import { type PseudonymKeyFile, readPseudonymKeyFile } from '../config/key-file.js';
import { PSEUDONYM_KEY_ENV, Pseudonymizer, PseudonymKeyError } from '../events/pseudonymize.js';
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
  return pseudonymizerWithKey(
    includePhi,
    keyFile === undefined ? null : readKeyFileOption(keyFile),
  );
}

/** Reads the key file named by --pseudonym-key-file; throws UsageError naming the file. */
export function readKeyFileOption(path: string): PseudonymKeyFile {
  const key = readPseudonymKeyFile(path);
  if ('problem' in key) throw new UsageError(key.problem);
  return key;
}

/** Creates the pseudonymizer keyed from `key` when given, else from TOLLGATE_PSEUDONYM_KEY. */
export function pseudonymizerWithKey(
  includePhi: boolean,
  key: PseudonymKeyFile | null,
): Pseudonymizer {
  if (key !== null) return new Pseudonymizer(key.key, includePhi);
  try {
    return Pseudonymizer.fromEnv(includePhi);
  } catch (error) {
    if (error instanceof PseudonymKeyError) {
      throw new UsageError(`invalid ${PSEUDONYM_KEY_ENV}: ${error.message}`, { cause: error });
    }
    throw error;
  }
}
