import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { loadPolicyText, PolicyValidationError } from '../../../src/policy/load.js';

const dir = mkdtempSync(join(tmpdir(), 'tollgate-throttle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HEAD =
  'version: 1\nrules:\n  - id: r\n    name: Rule\n    kind: egress-threshold\n    threshold: 5MB\n';

function messagesOf(text: string): string[] {
  try {
    loadPolicyText(text, 'site.yaml', dir);
  } catch (error) {
    if (error instanceof PolicyValidationError)
      return error.errors.map((e) => `${e.line}:${e.column} ${e.path}: ${e.message}`);
    throw error;
  }
  throw new Error('policy loaded without errors');
}

describe('throttle action', () => {
  test('compiles rate in bytes per second', () => {
    const policy = loadPolicyText(
      `${HEAD}    action: throttle\n    rate: 1.5MB\n`,
      'site.yaml',
      dir,
    );
    expect(policy.rules[0]!.action).toBe('throttle');
    expect(policy.rules[0]!.rateBytesPerSecond).toBe(1_500_000);
  });

  test('accepts throttle on a destination rule', () => {
    const policy = loadPolicyText(
      'version: 1\nrules:\n  - { id: c, name: Cloud, kind: cloud-storage, action: throttle, rate: 64KiB, destinations: { hosts: ["*.example.org"] } }\n',
      'site.yaml',
      dir,
    );
    expect(policy.rules[0]!.rateBytesPerSecond).toBe(65_536);
  });

  test('rejects throttle without rate', () => {
    expect(messagesOf(`${HEAD}    action: throttle\n`)).toEqual([
      '7:13 rules[0].action: action throttle requires rate (bytes per second, like "1MB")',
    ]);
  });

  test('rejects rate without throttle', () => {
    expect(messagesOf(`${HEAD}    action: block\n    rate: 1MB\n`)).toEqual([
      '8:5 rules[0].rate: rate is allowed only with action throttle',
    ]);
  });

  test('rejects a zero rate', () => {
    expect(messagesOf(`${HEAD}    action: throttle\n    rate: 0\n`)).toEqual([
      '8:11 rules[0].rate: rate must be at least 1 byte per second',
    ]);
  });

  test('rejects an invalid rate unit', () => {
    expect(messagesOf(`${HEAD}    action: throttle\n    rate: 1 MB/s\n`)).toEqual([
      '8:11 rules[0].rate: expected a size like "50MB", got "1 MB/s"',
    ]);
  });

  test('rejects rate on an allow rule', () => {
    expect(
      messagesOf(
        'version: 1\nrules:\n  - id: a\n    name: Allow\n    kind: allow\n    rate: 1MB\n',
      ),
    ).toEqual(['6:5 rules[0].rate: rate is not allowed for kind allow']);
  });
});
