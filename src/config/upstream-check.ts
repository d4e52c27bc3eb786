// Relay upstreams the gateway would refuse on every connection. The inline destination check
// refuses denied ranges, the unspecified address and the gateway's own listener and admin
// addresses. A relay whose upstream is such an IP literal could never carry a connection, so
// the configuration check rejects it. A name is resolved per connection and stays a runtime check.

import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { canonicalAddress, formatHostPort, reachesOwnAddress } from '../net/address.js';
import { CidrSet } from '../policy/cidr.js';
import type { HostPort } from './schema.js';

/** An address the gateway listens on, and what listens there, for messages. */
export interface OwnAddress {
  address: HostPort;
  /** Like `listener "web"` or `the admin API`. */
  owner: string;
}

export interface UpstreamCheckOptions {
  /** CIDRs that are always denied (link-local, cloud metadata). */
  builtInDenied: readonly string[];
  /** CIDRs from the config's denied_destinations. */
  configuredDenied: readonly string[];
  own: readonly OwnAddress[];
  /** Addresses of this host's interfaces; the gateway treats them like loopback. */
  localAddresses?: ReadonlySet<string>;
}

/**
 * Returns why the gateway would refuse every connection to `upstream`, as a clause like "is in
 * the denied range 169.254.0.0/16 (...)", or null when it would not or `upstream` is a name.
 */
export function unreachableUpstreamProblem(
  upstream: HostPort,
  options: UpstreamCheckOptions,
): string | null {
  if (isIP(upstream.host) === 0) return null;
  const address = canonicalAddress(upstream.host);

  if (address === '0.0.0.0' || address === '::') {
    return "is the unspecified address, which reaches the gateway's own host";
  }
  const builtIn = matchingCidr(address, options.builtInDenied);
  if (builtIn !== null) {
    return `is in the denied range ${builtIn} (built in, link-local and cloud metadata)`;
  }
  const configured = matchingCidr(address, options.configuredDenied);
  if (configured !== null) {
    return `is in the denied range ${configured} (denied_destinations)`;
  }
  const local = options.localAddresses ?? interfaceAddresses();
  for (const { address: own, owner } of options.own) {
    if (own.port !== upstream.port) continue;
    if (reachesOwnAddress(address, own.host, local)) {
      return `is the gateway's own address (${owner} listens on ${formatHostPort(own.host, own.port)})`;
    }
  }
  return null;
}

function matchingCidr(address: string, cidrs: readonly string[]): string | null {
  for (const cidr of cidrs) {
    if (CidrSet.parse([cidr]).has(address)) return cidr;
  }
  return null;
}

function interfaceAddresses(): Set<string> {
  const addresses = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const entry of list ?? []) addresses.add(canonicalAddress(entry.address));
  }
  return addresses;
}
