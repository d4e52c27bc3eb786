// Loading policy files: YAML parsing with positions, schema validation, list files, compilation.
// Every problem becomes a PolicyError naming the file, line, column and key path, and all of a
// file's problems are reported together.

import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { z } from 'zod';
import { CidrSet } from './cidr.js';
import { buildMatcher, type IndexedRule, type PathSegment, RuleCompiler } from './compile.js';
import type { CompiledList, Policy } from './model.js';
import { listBodySchema, listEntrySchema, policySchema, quote, ruleSchema } from './schema.js';
import { formatPolicyError, type PolicyError, readTextFile, YamlSource } from './yaml-source.js';

export { formatPolicyError, type PolicyError } from './yaml-source.js';

/** Largest policy or list file read, in bytes; bigger files are reported as errors. */
export const MAX_POLICY_FILE_BYTES = 16 * 1024 * 1024;

export class PolicyValidationError extends Error {
  readonly code = 'POLICY_INVALID';
  constructor(readonly errors: PolicyError[]) {
    const sorted = sortErrors(errors);
    super(sorted.map(formatPolicyError).join('\n'));
    this.errors = sorted;
    this.name = 'PolicyValidationError';
  }
}

/** Orders errors by position, keeping the files in the order they were first reported. */
function sortErrors(errors: PolicyError[]): PolicyError[] {
  const fileOrder = new Map<string, number>();
  for (const error of errors)
    if (!fileOrder.has(error.file)) fileOrder.set(error.file, fileOrder.size);
  return [...errors].sort(
    (a, b) =>
      fileOrder.get(a.file)! - fileOrder.get(b.file)! || a.line - b.line || a.column - b.column,
  );
}

/** Thrown by loadPolicyFile when the policy file itself cannot be read. */
export class PolicyReadError extends Error {
  readonly code = 'POLICY_UNREADABLE';
  constructor(
    readonly file: string,
    options: { cause: unknown },
  ) {
    const reason = options.cause instanceof Error ? options.cause.message : String(options.cause);
    super(`cannot read policy file ${file}: ${reason}`, options);
    this.name = 'PolicyReadError';
  }
}

/** Words the policy's invalid enum values with the value read and the values allowed. */
function wordPolicyIssue(issue: z.core.$ZodIssue): string | undefined {
  if (issue.code !== 'invalid_value') return undefined;
  const options = issue.values.map((value) => quote(value)).join(', ');
  const input = 'input' in issue ? ` got ${quote(issue.input)};` : '';
  return issue.values.length === 1 && issue.message
    ? issue.message
    : `invalid value;${input} expected one of ${options}`;
}

/** Reads the policy file at `path`; throws PolicyReadError or PolicyValidationError. */
export function loadPolicyFile(path: string): Policy {
  let text: string;
  try {
    text = readTextFile(path, MAX_POLICY_FILE_BYTES);
  } catch (cause) {
    throw new PolicyReadError(path, { cause });
  }
  return loadPolicyText(text, path, dirname(resolve(path)));
}

/**
 * Parses and compiles a policy. `fileName` names the text in errors; list files are read
 * relative to `baseDir`. Throws PolicyValidationError listing every problem found.
 */
export function loadPolicyText(text: string, fileName: string, baseDir: string): Policy {
  const errors: PolicyError[] = [];
  const source = new YamlSource(fileName, text, errors, wordPolicyIssue);
  if (!source.ok) throw new PolicyValidationError(errors);

  const raw = source.toJS();
  const top = policySchema.safeParse(raw, { reportInput: true });
  if (!top.success) source.reportIssues(top.error);
  // Go on after top-level errors so that each list and rule is checked as well.
  const fields = isPlainObject(raw) ? raw : {};

  const lists = new Map<string, CompiledList>();
  const brokenLists = new Set<string>();
  for (const [name, value] of Object.entries(isPlainObject(fields.lists) ? fields.lists : {})) {
    const list = loadList(name, value, source, baseDir, errors);
    if (list) lists.set(name, list);
    else brokenLists.add(name);
  }

  const rules: IndexedRule[] = [];
  (Array.isArray(fields.rules) ? fields.rules : []).forEach((value, index) => {
    const rule = ruleSchema.safeParse(value, { reportInput: true });
    if (rule.success) rules.push({ index, rule: rule.data });
    else source.reportIssues(rule.error, ['rules', index]);
  });

  const compiled = new RuleCompiler(lists, brokenLists, source.report).compileRules(rules);
  if (errors.length > 0 || !top.success || !compiled) throw new PolicyValidationError(errors);

  return {
    name: top.data.name ?? basename(fileName),
    source: fileName,
    protectedNetworks: top.data.protected_networks
      ? CidrSet.parse(top.data.protected_networks)
      : null,
    lists,
    rules: compiled,
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Compiles one `lists:` entry, reading its file when it names one. */
function loadList(
  name: string,
  value: unknown,
  policy: YamlSource,
  baseDir: string,
  errors: PolicyError[],
): CompiledList | null {
  const path: PathSegment[] = ['lists', name];
  const entry = listEntrySchema.safeParse(value, { reportInput: true });
  if (!entry.success) {
    policy.reportIssues(entry.error, path);
    return null;
  }
  const { file, ...inline } = entry.data;
  if (file === undefined) {
    const list: CompiledList = { name, source: policy.name, matcher: buildMatcher([inline]) };
    if (inline.description !== undefined) list.description = inline.description;
    return list;
  }

  const inlineKeys = Object.keys(inline);
  if (inlineKeys.length > 0) {
    policy.report([...path, inlineKeys[0]!], 'a list with "file" cannot also have inline entries', {
      atKey: true,
    });
    return null;
  }

  const displayName = isAbsolute(file) ? file : join(dirname(policy.name), file);
  let text: string;
  try {
    text = readTextFile(resolve(baseDir, file), MAX_POLICY_FILE_BYTES);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    policy.report([...path, 'file'], `cannot read list file ${quote(file)}: ${reason}`);
    return null;
  }

  const listFile = new YamlSource(displayName, text, errors, wordPolicyIssue);
  if (!listFile.ok) return null;
  const result = listBodySchema.safeParse(listFile.toJS() ?? {}, { reportInput: true });
  if (!result.success) {
    listFile.reportIssues(result.error);
    return null;
  }
  const list: CompiledList = { name, source: displayName, matcher: buildMatcher([result.data]) };
  if (result.data.description !== undefined) list.description = result.data.description;
  return list;
}

/** The policy and lists shipped in the package's policies/ folder (src/ and dist/ alike). */
export const DEFAULT_POLICY_PATH = fileURLToPath(
  new URL('../../policies/default.yaml', import.meta.url),
);

/** Loads the embedded default policy. Throws only if the package itself is broken. */
export function loadDefaultPolicy(): Policy {
  return loadPolicyFile(DEFAULT_POLICY_PATH);
}
