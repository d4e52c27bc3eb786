// Host-name sets with label-wise suffix matching.
//
// An entry "amazonaws.com" matches that name and every subdomain ("s3.eu-west-1.amazonaws.com")
// but not "evilamazonaws.com", because matching only happens on label boundaries. An entry
// "*.example.org" matches subdomains only. Names are compared in lower case without a trailing
// dot. A lookup costs one Set probe per label of the name looked up.

import { isIP } from 'node:net';

/** Maximum length of a DNS name in text form (RFC 1035 section 2.3.4, 255 octets on the wire). */
export const MAX_HOST_NAME_LENGTH = 253;

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** Lower-cases a name and removes one trailing dot. */
export function normalizeHostName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** Checks one host entry; returns a reason string when it is invalid, or null. */
export function hostEntryProblem(entry: string): string | null {
  const name = normalizeHostName(entry.startsWith('*.') ? entry.slice(2) : entry);
  if (name.length === 0) return 'empty host name';
  if (name.length > MAX_HOST_NAME_LENGTH) {
    return `host name length ${name.length} exceeds the maximum ${MAX_HOST_NAME_LENGTH}`;
  }
  if (isIP(name)) return 'an IP address belongs under cidrs, not hosts';
  for (const label of name.split('.')) {
    if (!LABEL.test(label)) {
      return `label "${label}" is not a DNS label (letters, digits, "-", "_"; use punycode for IDNs)`;
    }
  }
  return null;
}

export class HostSuffixSet {
  /** Names that match themselves and their subdomains. */
  private readonly withSubdomains = new Set<string>();
  /** Names from "*." entries: only their subdomains match. */
  private readonly subdomainsOnly = new Set<string>();
  readonly entries: string[] = [];

  /** Builds a set from entries already checked with hostEntryProblem. */
  constructor(entries: Iterable<string> = []) {
    for (const entry of entries) this.add(entry);
  }

  add(entry: string): void {
    this.entries.push(entry);
    if (entry.startsWith('*.')) this.subdomainsOnly.add(normalizeHostName(entry.slice(2)));
    else this.withSubdomains.add(normalizeHostName(entry));
  }

  get size(): number {
    return this.withSubdomains.size + this.subdomainsOnly.size;
  }

  /** True when `name` equals an entry or is a subdomain of one, on label boundaries. */
  has(name: string): boolean {
    if (name.length === 0 || name.length > MAX_HOST_NAME_LENGTH + 1) return false;
    const host = normalizeHostName(name);
    if (this.withSubdomains.has(host)) return true;

    // Walk the proper suffixes: "a.b.c" -> "b.c" -> "c".
    let dot = host.indexOf('.');
    while (dot >= 0) {
      const suffix = host.slice(dot + 1);
      if (this.withSubdomains.has(suffix) || this.subdomainsOnly.has(suffix)) return true;
      dot = host.indexOf('.', dot + 1);
    }
    return false;
  }
}
