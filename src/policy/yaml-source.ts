// YAML files with positions, shared by the policy and the gateway configuration loaders. A
// YamlSource parses a file, turns key paths into line and column, and records each problem,
// zod issues included, as a PolicyError so that all of a file's problems are reported together.

import { readFileSync, statSync } from 'node:fs';
import { type Document, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import type { z } from 'zod';
import type { PathSegment, Reporter } from './compile.js';
import { quote } from './schema.js';

/** Largest number of alias expansions per YAML document, against "billion laughs" files. */
export const MAX_YAML_ALIAS_COUNT = 100;

/** A problem in a policy, list or configuration file. */
export interface PolicyError {
  file: string;
  line: number;
  column: number;
  /** Key path inside the file, like "rules[2].threshold"; empty for the whole document. */
  path: string;
  message: string;
}

/** Formats an error as "file:line:column path: message". */
export function formatPolicyError(error: PolicyError): string {
  const where = `${error.file}:${error.line}:${error.column}`;
  return error.path ? `${where} ${error.path}: ${error.message}` : `${where} ${error.message}`;
}

/** Formats a key path like "rules[2].when.time". */
export function formatPath(path: readonly PathSegment[]): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else text += text ? `.${segment}` : segment;
  }
  return text;
}

/** Reads a UTF-8 file of at most `maxBytes` bytes; throws when it is larger or unreadable. */
export function readTextFile(path: string, maxBytes: number): string {
  const size = statSync(path).size;
  if (size > maxBytes) {
    throw new Error(`file size ${size} bytes exceeds the maximum ${maxBytes}`);
  }
  return readFileSync(path, 'utf8');
}

/**
 * Words the zod issues that a loader describes its own way. Returns undefined to leave an
 * issue to the shared wording of describeIssue.
 */
export type IssueWording = (issue: z.core.$ZodIssue) => string | undefined;

/** Describes a zod issue for an error message, asking `wording` first unless the value is missing. */
export function describeIssue(issue: z.core.$ZodIssue, wording?: IssueWording): string {
  if ('input' in issue && issue.input === undefined) return 'missing required key';
  const worded = wording?.(issue);
  if (worded !== undefined) return worded;
  if (issue.code === 'invalid_type') return `expected ${issue.expected}, got ${quote(issue.input)}`;
  return issue.message;
}

/** A parsed YAML file that can turn key paths into line and column. */
export class YamlSource {
  readonly lineCounter = new LineCounter();
  readonly doc: Document;

  /**
   * Parses `text` and records its syntax errors in `errors`. `name` names the file in errors;
   * `wording` words the zod issues that reportIssues records.
   */
  constructor(
    readonly name: string,
    text: string,
    private readonly errors: PolicyError[],
    private readonly wording?: IssueWording,
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

  /** True when the text parsed without syntax errors. */
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
        this.report(path, describeIssue(issue, this.wording));
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
