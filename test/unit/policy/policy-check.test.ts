import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, test } from 'vitest';
import { runPolicyCheck } from '../../../src/cli/policy-check.js';

const dir = mkdtempSync(join(tmpdir(), 'tollgate-check-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function check(path: string): { code: number; out: string; err: string } {
  const out = new PassThrough();
  const err = new PassThrough();
  const code = runPolicyCheck(path, out, err);
  return { code, out: String(out.read() ?? ''), err: String(err.read() ?? '') };
}

describe('runPolicyCheck', () => {
  test('valid policy prints a summary', () => {
    const result = check('policies/default.yaml');
    expect(result.code).toBe(0);
    expect(result.err).toBe('');
    expect(result.out).toBe(
      'policies/default.yaml: valid policy "Default tollgate policy": 3 rules (3 enabled), 1 lists, 4 protected networks\n',
    );
  });

  test('example policy is valid', () => {
    expect(check('policies/examples/site.yaml').code).toBe(0);
  });

  test('invalid policy lists each error on its own line', () => {
    const path = join(dir, 'broken.yaml');
    writeFileSync(
      path,
      'version: 1\nrules:\n  - id: a\n    name: A\n    kind: bulk-dicom\n  - id: b\n    name: B\n    kind: allow\n    extra: 1\n',
    );
    const result = check(path);
    expect(result.code).toBe(1);
    expect(result.out).toBe('');
    expect(result.err.split('\n')).toEqual([
      `${path}:3:5 rules[0]: kind bulk-dicom requires instances`,
      `${path}:9:5 rules[1].extra: unknown key "extra"`,
      `${path}: invalid policy, 2 errors`,
      '',
    ]);
  });

  test('missing file exits 2', () => {
    const result = check(join(dir, 'missing.yaml'));
    expect(result.code).toBe(2);
    expect(result.err).toMatch(/^cannot read policy file .*missing\.yaml: ENOENT/);
  });

  test('directory exits 2', () => {
    expect(check(dir).code).toBe(2);
  });
});
