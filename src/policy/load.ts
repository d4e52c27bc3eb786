// Loading policy files: YAML parsing with positions, schema validation, list files, compilation.
// Every problem becomes a PolicyError naming the file, line, column and key path, and all of a
// file's problems are reported together.

import { readFileSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Document, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import type { z } from 'zod';
import { CidrSet } from './cidr.js';
import {
  buildMatcher,
  type IndexedRule,
  type PathSegment,
  type Reporter,
  RuleCompiler,
} from './compile.js';
import type { CompiledList, Policy } from './model.js';
import { listBodySchema, listEntrySchema, policySchema, quote, ruleSchema } from './schema.js';

/** Largest policy or list file read, in bytes; bigger files are reported as errors. */
export const MAX_POLICY_FILE_BYTES = 16 * 1024 * 1024;
/** Largest number of alias expansions per YAML document, against "billion laughs" files. */
export const MAX_YAML_ALIAS_COUNT = 100;

export interface PolicyError {
  file: string;
  line: number;
  column: number;
  /** Key path inside the file, like "rules[2].threshold"; empty for the whole document. */
  path: string;
  message: string;
}

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

/** Formats an error as "file:line:column path: message". */
export function formatPolicyError(error: PolicyError): string {
  const where = `${error.file}:${error.line}:${error.column}`;
  return error.path ? `${where} ${error.path}: ${error.message}` : `${where} ${error.message}`;
}

export function formatPath(path: readonly PathSegment[]): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else text += text ? `.${segment}` : segment;
  }
  return text;
}

/** A parsed YAML file that can turn key paths into line and column. */
class SourceFile {
  readonly lineCounter = new LineCounter();
  readonly doc: Document;

  constructor(
    readonly name: string,
    text: string,
    private readonly errors: PolicyError[],
  ) {
    this.doc = parseDocument(text, { lineCounter: this.lineCounter, prettyErrors: false });
    for (const error of this.doc.errors) {
      const position = this.lineCounter.linePos(error.pos[0]);
      this.errors.push({
        file: name,
        line: position.line,
        column: position.col,
        path: '',
        message: `invalid YAML: ${error.message.split('\n')[0]}`,
      });
    }
  }

  get ok(): boolean {
    return this.doc.errors.length === 0;
  }

  /** Converts the document to plain values; reports the failure and returns undefined on error. */
  toJS(): unknown {
    try {
      return this.doc.toJS({ maxAliasCount: MAX_YAML_ALIAS_COUNT });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.report([], `invalid YAML: ${reason}`);
      return undefined;
    }
  }

  report: Reporter = (path, message, options) => {
    const offset = this.offsetOf(path, options?.atKey ?? false);
    const position = this.lineCounter.linePos(offset);
    this.errors.push({
      file: this.name,
      line: position.line,
      column: position.col,
      path: formatPath(path),
      message,
    });
  };

  /** Reports each zod issue, splitting unknown-key issues into one error per key. */
  reportIssues(error: z.ZodError, prefix: PathSegment[] = []): void {
    for (const issue of error.issues) {
      const issuePath = issue.path.filter((s): s is PathSegment => typeof s !== 'symbol');
      const path = [...prefix, ...issuePath];
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys)
          this.report([...path, key], `unknown key "${key}"`, { atKey: true });
      } else {
        this.report(path, issueMessage(issue));
      }
    }
  }

  /** Finds the offset of the deepest node on `path` that exists, or returns 0. */
  private offsetOf(path: readonly PathSegment[], atKey: boolean): number {
    let node: unknown = this.doc.contents;
    let offset = rangeStart(node) ?? 0;
    for (const [index, segment] of path.entries()) {
      const last = index === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find(
          (item) => isScalar(item.key) && String(item.key.value) === String(segment),
        );
        if (!pair) break;
        const keyStart = rangeStart(pair.key);
        const valueStart = rangeStart(pair.value);
        offset = (last && atKey ? keyStart : (valueStart ?? keyStart)) ?? offset;
        node = pair.value;
      } else if (isSeq(node) && typeof segment === 'number') {
        const item = node.items[segment];
        if (!item) break;
        offset = rangeStart(item) ?? offset;
        node = item;
      } else {
        break;
      }
    }
    return offset;
  }
}

function rangeStart(node: unknown): number | undefined {
  return (node as Node | null | undefined)?.range?.[0];
}

function issueMessage(issue: z.core.$ZodIssue): string {
  if ('input' in issue && issue.input === undefined) return 'missing required key';
  if (issue.code === 'invalid_type') {
    return `expected ${issue.expected}, got ${quote(issue.input)}`;
  }
  if (issue.code === 'invalid_value') {
    const options = issue.values.map((value) => quote(value)).join(', ');
    const input = 'input' in issue ? ` got ${quote(issue.input)};` : '';
    return issue.values.length === 1 && issue.message
      ? issue.message
      : `invalid value;${input} expected one of ${options}`;
  }
  return issue.message;
}

function readText(path: string): string {
  const size = statSync(path).size;
  if (size > MAX_POLICY_FILE_BYTES) {
    throw new Error(`file size ${size} bytes exceeds the maximum ${MAX_POLICY_FILE_BYTES}`);
  }
  return readFileSync(path, 'utf8');
}

/** Reads the policy file at `path`; throws PolicyReadError or PolicyValidationError. */
export function loadPolicyFile(path: string): Policy {
  let text: string;
  try {
    text = readText(path);
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
  const source = new SourceFile(fileName, text, errors);
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
  policy: SourceFile,
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
    text = readText(resolve(baseDir, file));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    policy.report([...path, 'file'], `cannot read list file ${quote(file)}: ${reason}`);
    return null;
  }

  const listFile = new SourceFile(displayName, text, errors);
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
