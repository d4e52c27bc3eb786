import { describe, expect, test } from 'vitest';
import { HostSuffixSet, hostEntryProblem } from '../../../src/policy/hosts.js';

describe('HostSuffixSet', () => {
  const set = new HostSuffixSet(['amazonaws.com', '*.example.org', 'Dropbox.COM.', 'transfer.sh']);

  test.each([
    ['amazonaws.com', true],
    ['s3.eu-west-1.amazonaws.com', true],
    ['S3.EU-WEST-1.AMAZONAWS.COM.', true],
    ['evilamazonaws.com', false],
    ['amazonaws.com.evil.net', false],
    ['com', false],
    ['example.org', false],
    ['www.example.org', true],
    ['a.b.example.org', true],
    ['notexample.org', false],
    ['dropbox.com', true],
    ['content.dropbox.com', true],
    ['transfer.sh', true],
    ['x.transfer.sh', true],
    ['', false],
    ['.', false],
  ])('%s -> %s', (name, expected) => {
    expect(set.has(name)).toBe(expected);
  });

  test('overlong name is not a member', () => {
    const long = `${'a.'.repeat(200)}amazonaws.com`;
    expect(set.has(long)).toBe(false);
  });
});

describe('hostEntryProblem', () => {
  test.each([
    ['example.org', null],
    ['*.example.org', null],
    ['_dmarc.example.org', null],
    ['xn--bcher-kva.example', null],
    ['', 'empty host name'],
    ['*.', 'empty host name'],
    ['10.0.0.1', 'an IP address belongs under cidrs, not hosts'],
    [
      'exa mple.org',
      'label "exa mple" is not a DNS label (letters, digits, "-", "_"; use punycode for IDNs)',
    ],
    ['a..b', 'label "" is not a DNS label (letters, digits, "-", "_"; use punycode for IDNs)'],
    [
      '*.*.example.org',
      'label "*" is not a DNS label (letters, digits, "-", "_"; use punycode for IDNs)',
    ],
    [
      '-a.example',
      'label "-a" is not a DNS label (letters, digits, "-", "_"; use punycode for IDNs)',
    ],
    [
      'bücher.example',
      'label "bücher" is not a DNS label (letters, digits, "-", "_"; use punycode for IDNs)',
    ],
  ])('%j', (entry, problem) => {
    expect(hostEntryProblem(entry)).toBe(problem);
  });

  test('name longer than 253 characters', () => {
    expect(hostEntryProblem(`${'a'.repeat(60)}.`.repeat(5))).toMatch(/exceeds the maximum 253/);
  });
});
