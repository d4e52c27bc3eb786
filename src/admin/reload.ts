// The outcome of a policy reload, as POST /reload reports it and SIGHUP logs it.

import { UsageError } from '../cli/options.js';
import { formatPolicyError, PolicyValidationError } from '../policy/load.js';

export type PolicyReloadResult =
  | { ok: true; source: string; name: string; rules: number }
  | { ok: false; errors: string[] };

/**
 * Lists why a reload failed, one `file:line:column key: message` line per validation error.
 * The lines come from the policy files and the loader, never from traffic.
 */
export function reloadErrors(error: unknown): string[] {
  const cause = error instanceof UsageError && error.cause !== undefined ? error.cause : error;
  if (cause instanceof PolicyValidationError) return cause.errors.map(formatPolicyError);
  if (cause instanceof Error) return [cause.message];
  return [String(cause)];
}
