import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, test } from 'vitest';
import {
  loadPolicyFile,
  loadPolicyText,
  type PolicyError,
  PolicyReadError,
  PolicyValidationError,
} from '../../../src/policy/load.js';

const dir = mkdtempSync(join(tmpdir(), 'tollgate-policy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function errorsOf(text: string, fileName = 'site.yaml'): PolicyError[] {
  try {
    loadPolicyText(text, fileName, dir);
  } catch (error) {
    if (error instanceof PolicyValidationError) return error.errors;
    throw error;
  }
  throw new Error('policy loaded without errors');
}

/** Formats errors as "line:column path: message" for compact comparison. */
function brief(errors: PolicyError[]): string[] {
  return errors.map((e) => `${e.line}:${e.column} ${e.path}: ${e.message}`);
}

const RULE = `  - id: r
    name: Rule
    kind: egress-threshold
    threshold: 50MB
`;

// Each case: a broken policy and the errors expected, with line and column.
const brokenPolicies: Array<[string, string, string[]]> = [
  ['version missing', 'rules: []\n', ['1:1 version: missing required key']],
  [
    'version 2',
    'version: 2\nrules: []\n',
    ['1:10 version: unsupported policy version; this tollgate reads version 1'],
  ],
  ['rules missing', 'version: 1\n', ['1:1 rules: missing required key']],
  [
    'unknown top-level key',
    'version: 1\nrulez: []\nrules: []\n',
    ['2:1 rulez: unknown key "rulez"'],
  ],
  [
    'bad size',
    `version: 1\nrules:\n  - id: r\n    name: Rule\n    kind: egress-threshold\n    threshold: fifty\n`,
    ['6:16 rules[0].threshold: expected a size like "50MB", got "fifty"'],
  ],
  [
    'unknown size unit',
    `version: 1\nrules:\n  - id: r\n    name: Rule\n    kind: egress-threshold\n    threshold: 5 parsecs\n`,
    [
      '6:16 rules[0].threshold: unknown size unit in "5 parsecs"; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB',
    ],
  ],
  [
    'threshold missing',
    `version: 1\nrules:\n  - id: r\n    name: Rule\n    kind: egress-threshold\n`,
    ['3:5 rules[0]: kind egress-threshold requires threshold'],
  ],
  [
    'instances missing',
    `version: 1\nrules:\n  - id: r\n    name: Rule\n    kind: bulk-dicom\n`,
    ['3:5 rules[0]: kind bulk-dicom requires instances'],
  ],
  [
    'empty condition list',
    `version: 1\nrules:\n  - id: r\n    name: Rule\n    kind: allow\n    when:\n      users: []\n`,
    [
      '7:14 rules[0].when.users: an empty list matches nothing: name at least one entry or remove the key',
    ],
  ],
  [
    'empty destination condition',
    `version: 1\nrules:\n  - id: r\n    name: Rule\n    kind: allow\n    when:\n      destination: {}\n`,
    [
      '7:20 rules[0].when.destination: an empty list matches nothing: name at least one entry or remove the key',
    ],
  ],
  [
    'share below a share',
    `version: 1\nrules:\n  - id: r\n    name: Rule\n    kind: allow\n    when:\n      shares: ['\\\\fs01\\exports\\sub']\n`,
    [
      '7:16 rules[0].when.shares[0]: invalid share "\\\\\\\\fs01\\\\exports\\\\sub"; expected a name like "exports" or a path like "\\\\fs01\\exports"',
    ],
  ],
  [
    'bulk-copy without a limit',
    `version: 1\nrules:\n  - id: r\n    name: Rule\n    kind: bulk-copy\n`,
    ['3:5 rules[0]: kind bulk-copy requires files or threshold'],
  ],
  [
    'field not allowed for kind',
    `version: 1\nrules:\n  - id: r\n    name: Rule\n    kind: bulk-dicom\n    instances: 5\n    threshold: 1MB\n`,
    ['7:5 rules[0].threshold: threshold is not allowed for kind bulk-dicom'],
  ],
  [
    'action on allow rule',
    `version: 1\nrules:\n  - id: r\n    name: Rule\n    kind: allow\n    action: block\n`,
    ['6:5 rules[0].action: action is not allowed for kind allow'],
  ],
  [
    'cloud-storage without destinations',
    `version: 1\nrules:\n  - id: r\n    name: Rule\n    kind: cloud-storage\n`,
    ['3:5 rules[0]: kind cloud-storage requires destinations or user_agents'],
  ],
  [
    'duplicate rule id',
    `version: 1\nrules:\n${RULE}${RULE}`,
    ['7:9 rules[1].id: duplicate rule id "r", first used by rules[0]'],
  ],
  [
    'unknown list',
    `version: 1\nlists:\n  known: { hosts: [example.org] }\nrules:\n  - id: r\n    name: Rule\n    kind: destination-not-allowed\n    allowed: { lists: [known, missing] }\n`,
    ['8:31 rules[0].allowed.lists[1]: unknown list "missing" (defined lists: known)'],
  ],
  [
    'unknown list in when',
    `version: 1\nrules:\n  - id: r\n    name: Rule\n    kind: allow\n    when:\n      source: { lists: [vendors] }\n`,
    ['7:25 rules[0].when.source.lists[0]: unknown list "vendors" (defined lists: none)'],
  ],
  [
    'invalid CIDR',
    `version: 1\nprotected_networks: [10.0.0.0/8, 10.1.2.3/16]\nrules: []\n`,
    [
      '2:34 protected_networks[1]: invalid CIDR "10.1.2.3/16": host bits are set; the network is 10.1.0.0/16',
    ],
  ],
  [
    'invalid host',
    `version: 1\nlists:\n  bad:\n    hosts:\n      - good.example\n      - bad host\nrules: []\n`,
    [
      '6:9 lists.bad.hosts[1]: invalid host "bad host": label "bad host" is not a DNS label (letters, digits, "-", "_"; use punycode for IDNs)',
    ],
  ],
  [
    'invalid AE title',
    `version: 1\nrules:\n  - id: r\n    name: Rule\n    kind: allow\n    when: { ae_titles: [THIS_TITLE_IS_TOO_LONG] }\n`,
    [
      '6:25 rules[0].when.ae_titles[0]: invalid AE title "THIS_TITLE_IS_TOO_LONG": length 22 is outside 1-16',
    ],
  ],
  [
    'severity out of range',
    `version: 1\nrules:\n  - id: r\n    name: Rule\n    kind: bulk-dicom\n    instances: 1\n    severity: 0\n`,
    ['7:15 rules[0].severity: severity must be from 1 to 100'],
  ],
  [
    'bad kind',
    `version: 1\nrules:\n  - id: r\n    name: Rule\n    kind: exfil\n`,
    [
      '5:11 rules[0].kind: invalid value; got "exfil"; expected one of "allow", "destination-not-allowed", "cloud-storage", "egress-threshold", "bulk-dicom", "bulk-copy"',
    ],
  ],
  [
    'bad port and time',
    `version: 1\nrules:\n  - id: r\n    name: Rule\n    kind: allow\n    when:\n      destination: { ports: [70000] }\n      time: { from: "7pm", to: "07:00", days: [friday] }\n`,
    [
      '7:30 rules[0].when.destination.ports[0]: expected a port 1-65535 or a range like "8000-8100", got 70000',
      '8:21 rules[0].when.time.from: expected a time "HH:MM" from "00:00" to "24:00", got "7pm"',
      '8:48 rules[0].when.time.days[0]: invalid value; got "friday"; expected one of "sun", "mon", "tue", "wed", "thu", "fri", "sat"',
    ],
  ],
  [
    'unknown time zone',
    `version: 1\nrules:\n  - id: r\n    name: Rule\n    kind: allow\n    when:\n      time: { from: "19:00", to: "07:00", timezone: Europe/Gotham }\n`,
    [
      '7:53 rules[0].when.time.timezone: unknown time zone "Europe/Gotham"; use an IANA name like "Europe/Berlin"',
    ],
  ],
  [
    'wrong type',
    `version: 1\nrules:\n  - id: r\n    name: Rule\n    kind: allow\n    enabled: "yes please"\n`,
    ['6:14 rules[0].enabled: expected boolean, got "yes please"'],
  ],
  [
    'errors in two rules',
    `version: 1\nrules:\n  - id: a\n    name: A\n    kind: bulk-dicom\n  - id: b\n    name: B\n    kind: allow\n    colour: red\n`,
    [
      '3:5 rules[0]: kind bulk-dicom requires instances',
      '9:5 rules[1].colour: unknown key "colour"',
    ],
  ],
  [
    'YAML syntax',
    'version: 1\nrules: [\n',
    [
      '3:1 : invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]',
    ],
  ],
  [
    'duplicate YAML key',
    'version: 1\nversion: 1\nrules: []\n',
    ['2:1 : invalid YAML: Map keys must be unique'],
  ],
];

describe('policy validation errors', () => {
  test.each(brokenPolicies)('%s', (_name, text, expected) => {
    expect(brief(errorsOf(text))).toEqual(expected);
  });

  test('message has file, line, column and path', () => {
    const text = `version: 1\nrules:\n  - id: r\n    name: Rule\n    kind: egress-threshold\n    threshold: fifty\n`;
    expect(() => loadPolicyText(text, 'policies/site.yaml', dir)).toThrow(
      'policies/site.yaml:6:16 rules[0].threshold: expected a size like "50MB", got "fifty"',
    );
  });

  test('error has a stable code', () => {
    try {
      loadPolicyText('version: 3\nrules: []\n', 'x.yaml', dir);
    } catch (error) {
      expect((error as PolicyValidationError).code).toBe('POLICY_INVALID');
    }
  });

  test('alias expansion is bounded', () => {
    // Each level refers ten times to the one before: 10^7 nodes once expanded.
    const refs = (anchor: string) => Array(10).fill(`*${anchor}`).join(', ');
    const lines = ['version: 1', 'rules: []', 'l0: &l0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let level = 1; level <= 6; level++)
      lines.push(`l${level}: &l${level} [${refs(`l${level - 1}`)}]`);
    const errors = errorsOf(lines.join('\n'));
    expect(errors[0]?.message).toMatch(/^invalid YAML: .*alias/i);
  });
});

describe('list files', () => {
  writeFileSync(join(dir, 'good.yaml'), 'hosts: [archive.example.org]\ncidrs: [198.51.100.0/24]\n');
  writeFileSync(
    join(dir, 'bad.yaml'),
    '# a broken list\nhosts:\n  - archive.example.org\ncidrs:\n  - 198.51.100.0/33\ncolour: red\n',
  );

  test('error in a list file names that file and line', () => {
    const text = `version: 1\nlists:\n  bad: { file: bad.yaml }\nrules: []\n`;
    const errors = errorsOf(text, 'policies/site.yaml');
    expect(errors.map((e) => `${e.file}:${e.line}:${e.column} ${e.path}: ${e.message}`)).toEqual([
      'policies/bad.yaml:5:5 cidrs[0]: invalid CIDR "198.51.100.0/33": prefix length 33 exceeds the maximum 32 for IPv4',
      'policies/bad.yaml:6:1 colour: unknown key "colour"',
    ]);
  });

  test('reference to a broken list is not reported twice', () => {
    const text = `version: 1\nlists:\n  bad: { file: bad.yaml }\nrules:\n  - id: r\n    name: R\n    kind: destination-not-allowed\n    allowed: { lists: [bad] }\n`;
    const errors = errorsOf(text);
    expect(errors.every((e) => e.file.endsWith('bad.yaml'))).toBe(true);
  });

  test('missing list file is reported at its file key', () => {
    const text = `version: 1\nlists:\n  gone: { file: gone.yaml }\nrules: []\n`;
    const [error] = errorsOf(text);
    expect(error?.line).toBe(3);
    expect(error?.column).toBe(17);
    expect(error?.path).toBe('lists.gone.file');
    expect(error?.message).toMatch(/^cannot read list file "gone.yaml": ENOENT/);
  });

  test('file and inline entries together', () => {
    const text = `version: 1\nlists:\n  both: { file: good.yaml, hosts: [x.example] }\nrules: []\n`;
    expect(brief(errorsOf(text))).toEqual([
      '3:28 lists.both.hosts: a list with "file" cannot also have inline entries',
    ]);
  });

  test('list file loads relative to the policy', () => {
    const text = `version: 1\nlists:\n  good: { file: good.yaml }\nrules: []\n`;
    const policy = loadPolicyText(text, 'site.yaml', dir);
    const good = policy.lists.get('good');
    expect(good?.matcher.hosts?.has('archive.example.org')).toBe(true);
    expect(good?.matcher.cidrs?.has('198.51.100.20')).toBe(true);
  });

  test('unreadable policy file is a read error', () => {
    expect(() => loadPolicyFile(join(dir, 'no-such-policy.yaml'))).toThrow(PolicyReadError);
  });
});

describe('loader robustness', () => {
  test('arbitrary text only raises PolicyValidationError', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        try {
          loadPolicyText(text, 'fuzz.yaml', dir);
        } catch (error) {
          expect(error).toBeInstanceOf(PolicyValidationError);
        }
      }),
      { numRuns: 300 },
    );
  });

  test('arbitrary structures only raise PolicyValidationError', () => {
    const value = fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null));
    const rule = fc.record(
      {
        id: value,
        name: value,
        kind: fc.constantFrom('allow', 'cloud-storage', 'egress-threshold', 'bulk-dicom', 'x'),
        threshold: value,
        instances: value,
        when: fc.dictionary(fc.constantFrom('destination', 'time', 'users', 'x'), value),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.array(rule, { maxLength: 4 }), (rules) => {
        const text = JSON.stringify({ version: 1, rules });
        try {
          loadPolicyText(text, 'fuzz.yaml', dir);
        } catch (error) {
          expect(error).toBeInstanceOf(PolicyValidationError);
        }
      }),
      { numRuns: 300 },
    );
  });
});
