// The structure of policy and list files, as zod schemas. Values are checked here one by one
// (CIDRs, host names, sizes, ports, clock times). Checks that span fields or files (rule kinds,
// list references, duplicate ids) are in compile.ts.

import { z } from 'zod';
import { parseCidr } from './cidr.js';
import { hostEntryProblem } from './hosts.js';
import { POLICY_PROTOCOLS, RULE_KINDS } from './model.js';
import { isKnownTimeZone, parseClockTime, WEEKDAYS } from './time-window.js';

/** Maximum AE title length (DICOM PS3.5 section 6.2, value representation AE). */
export const MAX_AE_TITLE_LENGTH = 16;
/** Maximum length of a quoted value in an error message. */
const MAX_QUOTED_LENGTH = 60;

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** Quotes a value from a policy file for an error message, cut to a bounded length. */
export function quote(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > MAX_QUOTED_LENGTH ? `${text.slice(0, MAX_QUOTED_LENGTH)}...` : text;
}

/** Parses a size ("50MB", "1.5 GiB", 1024) into bytes; returns a reason string on error. */
export function parseSize(value: unknown): number | string {
  const expected = `expected a size like "50MB", got ${quote(value)}`;
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && value >= 0 ? value : expected;
  }
  if (typeof value !== 'string') return expected;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)?\s*$/.exec(value);
  if (!match) return expected;
  const unit = SIZE_UNITS[(match[2] ?? 'b').toLowerCase()];
  if (unit === undefined) {
    return `unknown size unit in ${quote(value)}; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB`;
  }
  const bytes = Math.round(Number(match[1]) * unit);
  if (!Number.isSafeInteger(bytes))
    return `size ${quote(value)} exceeds ${Number.MAX_SAFE_INTEGER} bytes`;
  return bytes;
}

/** Parses a port (443) or an inclusive range ("8000-8100"); returns a reason string on error. */
export function parsePortRange(value: unknown): [number, number] | string {
  const expected = `expected a port 1-65535 or a range like "8000-8100", got ${quote(value)}`;
  let low: number;
  let high: number;
  if (typeof value === 'number') {
    low = value;
    high = value;
  } else if (typeof value === 'string') {
    const match = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$/.exec(value);
    if (!match) return expected;
    low = Number(match[1]);
    high = match[2] === undefined ? low : Number(match[2]);
  } else {
    return expected;
  }
  if (!Number.isInteger(low) || !Number.isInteger(high) || low < 1 || high > 65535) return expected;
  if (low > high) return `port range ${quote(value)} starts after it ends`;
  return [low, high];
}

/** A schema whose value is produced by `parse`, which returns a reason string on error. */
export function parsed<T>(parse: (value: unknown) => T | string) {
  return z.unknown().transform((value, ctx): T => {
    const result = value === undefined ? 'missing required value' : parse(value);
    if (typeof result === 'string') {
      ctx.addIssue({ code: 'custom', message: result });
      return z.NEVER;
    }
    return result;
  });
}

/** A CIDR like "10.0.0.0/8" or "2001:db8::/32", checked by parseCidr. */
export const cidr = z.string().superRefine((value, ctx) => {
  const result = parseCidr(value);
  if (typeof result === 'string') {
    ctx.addIssue({ code: 'custom', message: `invalid CIDR ${quote(value)}: ${result}` });
  }
});

const host = z.string().superRefine((value, ctx) => {
  const problem = hostEntryProblem(value);
  if (problem)
    ctx.addIssue({ code: 'custom', message: `invalid host ${quote(value)}: ${problem}` });
});

/** AE values use the default character repertoire without backslash or control characters. */
function isAeTitleText(title: string): boolean {
  for (let i = 0; i < title.length; i++) {
    const c = title.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x5c) return false;
  }
  return true;
}

const aeTitle = z.string().superRefine((value, ctx) => {
  const title = value.trim();
  if (title.length === 0 || title.length > MAX_AE_TITLE_LENGTH) {
    ctx.addIssue({
      code: 'custom',
      message: `invalid AE title ${quote(value)}: length ${title.length} is outside 1-${MAX_AE_TITLE_LENGTH}`,
    });
  } else if (!isAeTitleText(title)) {
    ctx.addIssue({
      code: 'custom',
      message: `invalid AE title ${quote(value)}: use printable ASCII without backslash`,
    });
  }
});

const userAgentPrefix = z.string().min(1, 'a User-Agent prefix must not be empty');
const listName = z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'a list name uses a-z, 0-9, "-", "_"');

const clockTime = parsed((value) => {
  const minute = typeof value === 'string' ? parseClockTime(value) : null;
  return minute ?? `expected a time "HH:MM" from "00:00" to "24:00", got ${quote(value)}`;
});

const timeZone = z.string().superRefine((value, ctx) => {
  if (!isKnownTimeZone(value)) {
    ctx.addIssue({
      code: 'custom',
      message: `unknown time zone ${quote(value)}; use an IANA name like "Europe/Berlin"`,
    });
  }
});

export const listBodySchema = z.strictObject({
  name: z.string().optional(),
  description: z.string().optional(),
  hosts: z.array(host).optional(),
  cidrs: z.array(cidr).optional(),
  ae_titles: z.array(aeTitle).optional(),
  user_agents: z.array(userAgentPrefix).optional(),
});
export type ListBody = z.infer<typeof listBodySchema>;

/** A `lists:` entry in a policy: either `{ file }` or the entries inline. */
export const listEntrySchema = listBodySchema.extend({ file: z.string().min(1).optional() });
export type ListEntry = z.infer<typeof listEntrySchema>;

const matcherRefsSchema = z.strictObject({
  lists: z.array(listName).optional(),
  cidrs: z.array(cidr).optional(),
  hosts: z.array(host).optional(),
  ae_titles: z.array(aeTitle).optional(),
});
export type MatcherRefs = z.infer<typeof matcherRefsSchema>;

/**
 * An SMB share: a bare name (`exports`) or `\\server\share`. Share names cannot contain the
 * characters below (MS-FSCC section 2.1.6), so an entry with them could never match.
 */
const shareName = z
  .string()
  .min(1, 'a share name must not be empty')
  .refine((value) => /^(?:\\\\[^\\/]+\\)?[^\\/:*?"<>|]+$/.test(value), {
    error: (issue) =>
      `invalid share ${JSON.stringify(issue.input)}; expected a name like "exports" or a path like "\\\\fs01\\exports"`,
  });

/** A condition list that names nothing would switch its rule off without a word. */
const EMPTY_CONDITION = 'an empty list matches nothing: name at least one entry or remove the key';

function conditionList<T extends z.ZodType>(item: T) {
  return z.array(item).min(1, EMPTY_CONDITION);
}

const whenSchema = z.strictObject({
  destination: z
    .strictObject({
      lists: conditionList(listName).optional(),
      cidrs: conditionList(cidr).optional(),
      hosts: conditionList(host).optional(),
      ports: conditionList(parsed(parsePortRange)).optional(),
    })
    .refine((value) => Object.keys(value).length > 0, EMPTY_CONDITION)
    .optional(),
  source: z
    .strictObject({
      lists: conditionList(listName).optional(),
      cidrs: conditionList(cidr).optional(),
    })
    .refine((value) => Object.keys(value).length > 0, EMPTY_CONDITION)
    .optional(),
  users: conditionList(z.string().min(1, 'a user name must not be empty')).optional(),
  shares: conditionList(shareName).optional(),
  ae_titles: conditionList(aeTitle).optional(),
  protocols: conditionList(z.enum(POLICY_PROTOCOLS)).optional(),
  time: z
    .strictObject({
      from: clockTime,
      to: clockTime,
      days: z.array(z.enum(WEEKDAYS)).min(1, 'list at least one day').optional(),
      timezone: timeZone.optional(),
    })
    .optional(),
});
export type WhenInput = z.infer<typeof whenSchema>;

export const ruleSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9-]+$/, 'a rule id uses only a-z, 0-9 and "-"'),
  name: z.string().min(1, 'a rule name must not be empty'),
  kind: z.enum(RULE_KINDS),
  action: z.enum(['alert', 'throttle', 'block']).optional(),
  /** Bytes per second a throttle rule allows per remote, as a size ("1MB" means 1 MB/s). */
  rate: parsed(parseSize).optional(),
  severity: z
    .number()
    .int('severity must be an integer from 1 to 100')
    .min(1, 'severity must be from 1 to 100')
    .max(100, 'severity must be from 1 to 100')
    .optional(),
  enabled: z.boolean().optional(),
  dry_run: z.boolean().optional(),
  when: whenSchema.optional(),
  destinations: matcherRefsSchema.optional(),
  user_agents: z.array(userAgentPrefix).optional(),
  allowed: matcherRefsSchema.optional(),
  threshold: parsed(parseSize).optional(),
  instances: z
    .number()
    .int('instances must be a whole number')
    .min(0, 'instances must not be negative')
    .optional(),
  files: z
    .number()
    .int('files must be a whole number')
    .min(0, 'files must not be negative')
    .optional(),
  per: z.enum(['remote', 'source-remote', 'user']).optional(),
  window: z.enum(['hour', 'rolling', 'both']).optional(),
});
export type RuleInput = z.infer<typeof ruleSchema>;

/**
 * The top level of a policy file. Lists and rules are checked one by one afterwards, so that a
 * broken rule does not hide the problems of the others.
 */
export const policySchema = z.strictObject({
  version: z.literal(1, 'unsupported policy version; this tollgate reads version 1'),
  name: z.string().min(1).optional(),
  protected_networks: z.array(cidr).optional(),
  lists: z.record(listName, z.unknown()).optional(),
  rules: z.array(z.unknown()),
});
