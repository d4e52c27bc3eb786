// Sets of IPv4 and IPv6 networks with a fast membership test.
//
// IPv4 networks are kept as 32-bit numbers in one Set per prefix length, so a lookup costs one
// mask and one Set probe per distinct prefix length in the set. IPv6 networks use BigInt the same
// way. An IPv4-mapped IPv6 address (::ffff:192.0.2.1) is looked up as the IPv4 address it carries,
// and a network written inside ::ffff:0:0/96 is stored as the IPv4 network it denotes.

import { isIPv4, isIPv6 } from 'node:net';

export type IpVersion = 4 | 6;

export interface Cidr {
  version: IpVersion;
  /** Network address: a uint32 for IPv4, a 128-bit BigInt for IPv6. */
  network: number | bigint;
  prefixLength: number;
}

/** Thrown by CidrSet.parse for an entry that is not a network or address. */
export class CidrParseError extends Error {
  readonly code = 'CIDR_INVALID';
  constructor(
    readonly index: number,
    readonly value: string,
    reason: string,
  ) {
    super(`invalid CIDR ${JSON.stringify(value)}: ${reason}`);
    this.name = 'CidrParseError';
  }
}

const IPV6_ALL_ONES = (1n << 128n) - 1n;

/**
 * Parses a dotted-quad IPv4 address into a uint32, or returns -1.
 * Hand-written because it runs once per flow lookup; rejects leading zeros ("010") as `net` does.
 */
export function parseIpv4(text: string): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1;
      octet = octet * 10 + (c - 48);
      digits++;
      if (octet > 255) return -1;
    } else if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else {
      return -1;
    }
  }
  if (digits === 0 || dots !== 3) return -1;
  return value * 256 + octet;
}

/** Parses an IPv6 address (with optional embedded IPv4 tail) into a BigInt, or returns null. */
export function parseIpv6(text: string): bigint | null {
  if (!isIPv6(text)) return null;
  let body = text;

  // An embedded IPv4 tail ("::ffff:192.0.2.1") becomes the last two 16-bit words.
  const lastColon = body.lastIndexOf(':');
  const tail = body.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = parseIpv4(tail);
    if (v4 < 0) return null;
    const high = Math.floor(v4 / 0x10000).toString(16);
    const low = (v4 & 0xffff).toString(16);
    body = `${body.slice(0, lastColon + 1)}${high}:${low}`;
  }

  const halves = body.split('::');
  const head = halves[0] ? halves[0].split(':') : [];
  const rest = halves.length > 1 && halves[1] ? halves[1].split(':') : [];
  const zeros = halves.length > 1 ? 8 - head.length - rest.length : 0;
  const words = [...head, ...Array<string>(zeros).fill('0'), ...rest];
  if (words.length !== 8) return null;

  let value = 0n;
  for (const word of words) value = (value << 16n) | BigInt(Number.parseInt(word, 16));
  return value;
}

/** Strips an IPv6 zone ("fe80::1%eth0") and the brackets of "[2001:db8::1]". */
function stripDecorations(ip: string): string {
  let text = ip;
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  return text;
}

/** Parses "a.b.c.d/n", "x::y/n" or a bare address (a host route); returns a reason string on error. */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  const addressText = slash >= 0 ? text.slice(0, slash) : text;
  const prefixText = slash >= 0 ? text.slice(slash + 1) : null;

  let version: IpVersion;
  let maxPrefix: number;
  if (isIPv4(addressText)) {
    version = 4;
    maxPrefix = 32;
  } else if (isIPv6(addressText)) {
    version = 6;
    maxPrefix = 128;
  } else {
    return 'not an IPv4 or IPv6 address';
  }

  let prefixLength = maxPrefix;
  if (prefixText !== null) {
    if (!/^\d{1,3}$/.test(prefixText)) return `prefix length "${prefixText}" is not a number`;
    prefixLength = Number(prefixText);
    if (prefixLength > maxPrefix) {
      return `prefix length ${prefixLength} exceeds the maximum ${maxPrefix} for IPv${version}`;
    }
  }

  if (version === 4) {
    const address = parseIpv4(addressText);
    const network = maskIpv4(address, prefixLength);
    if (network !== address) {
      return `host bits are set; the network is ${formatIpv4(network)}/${prefixLength}`;
    }
    return { version, network, prefixLength };
  }

  const address = parseIpv6(addressText);
  if (address === null) return 'not an IPv6 address';
  const network = maskIpv6(address, prefixLength);
  if (network !== address) return `host bits are set for prefix length ${prefixLength}`;
  if (prefixLength >= 96 && network >> 32n === 0xffffn) {
    // ::ffff:a.b.c.d/n is an IPv4 network; store it as one so IPv4 lookups find it.
    return { version: 4, network: Number(network & 0xffffffffn), prefixLength: prefixLength - 96 };
  }
  return { version, network, prefixLength };
}

function maskIpv4(address: number, prefixLength: number): number {
  if (prefixLength === 0) return 0;
  return (address & (~0 << (32 - prefixLength))) >>> 0;
}

function maskIpv6(address: bigint, prefixLength: number): bigint {
  if (prefixLength === 0) return 0n;
  const hostBits = BigInt(128 - prefixLength);
  return address & ((IPV6_ALL_ONES >> hostBits) << hostBits);
}

function formatIpv4(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

export class CidrSet {
  /** Prefix length -> networks, for the lengths present only. */
  private readonly v4 = new Map<number, Set<number>>();
  private readonly v6 = new Map<number, Set<bigint>>();
  private v4Lengths: number[] = [];
  private v6Lengths: number[] = [];
  /** The entries as written, for summaries and diagnostics. */
  readonly entries: string[] = [];

  /** Builds a set from CIDR strings; throws CidrParseError naming the first invalid entry. */
  static parse(list: readonly string[]): CidrSet {
    const set = new CidrSet();
    list.forEach((text, index) => {
      const parsed = parseCidr(text);
      if (typeof parsed === 'string') throw new CidrParseError(index, text, parsed);
      set.add(parsed, text);
    });
    return set;
  }

  /** Merges several sets into a new one. */
  static union(sets: readonly CidrSet[]): CidrSet {
    const merged = new CidrSet();
    for (const set of sets) {
      for (const [length, networks] of set.v4) {
        for (const network of networks) merged.add({ version: 4, network, prefixLength: length });
      }
      for (const [length, networks] of set.v6) {
        for (const network of networks) merged.add({ version: 6, network, prefixLength: length });
      }
      merged.entries.push(...set.entries);
    }
    return merged;
  }

  get size(): number {
    let count = 0;
    for (const networks of this.v4.values()) count += networks.size;
    for (const networks of this.v6.values()) count += networks.size;
    return count;
  }

  private add(cidr: Cidr, text?: string): void {
    if (cidr.version === 4) {
      let networks = this.v4.get(cidr.prefixLength);
      if (!networks) {
        networks = new Set();
        this.v4.set(cidr.prefixLength, networks);
        this.v4Lengths = [...this.v4.keys()].sort((a, b) => a - b);
      }
      networks.add(cidr.network as number);
    } else {
      let networks = this.v6.get(cidr.prefixLength);
      if (!networks) {
        networks = new Set();
        this.v6.set(cidr.prefixLength, networks);
        this.v6Lengths = [...this.v6.keys()].sort((a, b) => a - b);
      }
      networks.add(cidr.network as bigint);
    }
    if (text !== undefined) this.entries.push(text);
  }

  /** True when `ip` lies in one of the networks. Returns false for text that is not an address. */
  has(ip: string): boolean {
    const v4 = parseIpv4(ip);
    if (v4 >= 0) return this.hasIpv4(v4);

    const v6 = parseIpv6(stripDecorations(ip));
    if (v6 === null) return false;
    if (v6 >> 32n === 0xffffn) return this.hasIpv4(Number(v6 & 0xffffffffn));
    for (const length of this.v6Lengths) {
      if (this.v6.get(length)?.has(maskIpv6(v6, length))) return true;
    }
    return false;
  }

  private hasIpv4(address: number): boolean {
    for (const length of this.v4Lengths) {
      if (this.v4.get(length)?.has(maskIpv4(address, length))) return true;
    }
    return false;
  }
}
