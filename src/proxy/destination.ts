// Decides where a proxied connection may go, before the gateway connects. A name is resolved
// once; the name and every address it resolves to are checked (denied ranges, the gateway's own
// ports, the policy's destination rules), and the caller connects to the checked address, so a
// DNS answer that changes between check and connect cannot redirect the connection.

import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { HostPort } from '../config/schema.js';
import type { Verdict } from '../engine/front-end.js';
import type { Endpoint, Millis } from '../engine/types.js';
import { canonicalAddress, reachesOwnAddress } from '../net/address.js';
import type { CidrSet } from '../policy/cidr.js';
import { hostEntryProblem, normalizeHostName } from '../policy/hosts.js';
import type { FlowFacts } from '../policy/model.js';

/** Resolves a name to all its addresses, like dns.lookup(name, { all: true }). */
export type LookupFunction = (name: string) => Promise<Array<{ address: string; family: number }>>;

export const systemLookup: LookupFunction = (name) =>
  dnsLookup(name, { all: true, verbatim: true });

/** The reason a destination was refused. `ruleId` names the rule in events and replies. */
export interface Refusal {
  reason: 'policy' | 'denied-destination' | 'gateway-address' | 'invalid-name' | 'not-resolved';
  ruleId: string;
  ruleName: string;
  /** The address that was refused, when one was. */
  address?: string;
  /** The policy verdict, for reason 'policy'. */
  verdict?: Verdict;
}

export type DestinationDecision =
  | { ok: true; address: string; name: string | undefined }
  | { ok: false; refusal: Refusal };

export interface DestinationRequest {
  client: Endpoint;
  /** An address or a DNS name. */
  host: string;
  port: number;
  protocol?: string;
  ts: Millis;
}

export interface DestinationGuardOptions {
  deniedDestinations: CidrSet;
  protectedNetworks: () => CidrSet;
  /** Addresses the gateway itself listens on (listeners and admin). */
  ownAddresses: readonly HostPort[];
  /** The policy's verdict for a destination, normally Engine.destinationRefusal. */
  policyRefusal: (facts: FlowFacts) => Verdict | null;
  lookup: LookupFunction;
  /** Most addresses of one name that are checked; the rest are ignored. */
  maxAddresses?: number;
}

const DEFAULT_MAX_ADDRESSES = 32;

export class DestinationGuard {
  private readonly localAddresses: Set<string>;

  constructor(private readonly options: DestinationGuardOptions) {
    this.localAddresses = new Set(['0.0.0.0', '::']);
    for (const list of Object.values(networkInterfaces())) {
      for (const entry of list ?? []) this.localAddresses.add(canonicalAddress(entry.address));
    }
  }

  /** Resolves and checks a destination. Never throws: lookup failures become refusals. */
  async check(request: DestinationRequest): Promise<DestinationDecision> {
    let name: string | undefined;
    let addresses: string[];
    if (isIP(request.host) !== 0) {
      addresses = [canonicalAddress(request.host)];
    } else {
      name = normalizeHostName(request.host);
      const problem = hostEntryProblem(name);
      if (problem !== null || name.startsWith('*.')) {
        return refuse(
          'invalid-name',
          'invalid-name',
          `Invalid destination name: ${problem ?? 'wildcard'}`,
        );
      }
      const refusal = this.checkName(request, name);
      if (refusal !== null) return { ok: false, refusal };
      try {
        const answers = await this.options.lookup(name);
        addresses = answers.map((answer) => canonicalAddress(answer.address));
      } catch {
        addresses = [];
      }
      if (addresses.length === 0) {
        return refuse('not-resolved', 'not-resolved', 'Destination name did not resolve');
      }
      addresses = addresses.slice(0, this.options.maxAddresses ?? DEFAULT_MAX_ADDRESSES);
    }

    for (const address of addresses) {
      const refusal = this.checkAddress(request, address, name);
      if (refusal !== null) return { ok: false, refusal };
    }
    return { ok: true, address: addresses[0]!, name };
  }

  /** Checks the name alone against the policy, before any DNS query leaves the gateway. */
  private checkName(request: DestinationRequest, name: string): Refusal | null {
    if (!this.options.protectedNetworks().has(request.client.ip)) return null;
    // The name is checked with an address no rule matches. Only a cloud-storage verdict is
    // final here: an allow-list may still admit the address the name resolves to.
    const verdict = this.options.policyRefusal(this.facts(request, '0.0.0.0', name));
    if (verdict === null || verdict.eventAction !== 'cloud-storage-transfer') return null;
    return policyRefusal(verdict);
  }

  private checkAddress(
    request: DestinationRequest,
    address: string,
    name: string | undefined,
  ): Refusal | null {
    if (UNSPECIFIED_ADDRESSES.has(address)) {
      // A connection to 0.0.0.0 or :: reaches the gateway's own host.
      return {
        reason: 'denied-destination',
        ruleId: 'denied-destinations',
        ruleName: 'Destination is the unspecified address (0.0.0.0 or ::)',
        address,
      };
    }
    if (this.options.deniedDestinations.has(address)) {
      return {
        reason: 'denied-destination',
        ruleId: 'denied-destinations',
        ruleName: 'Destination in a denied range (link-local, cloud metadata or configured)',
        address,
      };
    }
    if (this.isOwnAddress(address, request.port)) {
      return {
        reason: 'gateway-address',
        ruleId: 'gateway-address',
        ruleName: 'Destination is a port of the gateway itself',
        address,
      };
    }
    const protectedNetworks = this.options.protectedNetworks();
    // Rules apply to egress: an inside client going to an outside address.
    if (!protectedNetworks.has(request.client.ip) || protectedNetworks.has(address)) return null;
    const verdict = this.options.policyRefusal(this.facts(request, address, name));
    if (verdict === null) return null;
    return { ...policyRefusal(verdict), address };
  }

  private isOwnAddress(address: string, port: number): boolean {
    return this.options.ownAddresses.some(
      (own) => own.port === port && reachesOwnAddress(address, own.host, this.localAddresses),
    );
  }

  private facts(request: DestinationRequest, address: string, name: string | undefined): FlowFacts {
    const facts: FlowFacts = {
      remoteIp: address,
      remotePort: request.port,
      sourceIp: request.client.ip,
      protocol: request.protocol ?? 'unknown',
      ts: request.ts,
    };
    if (name !== undefined) facts.remoteName = name;
    return facts;
  }
}

function refuse(reason: Refusal['reason'], ruleId: string, ruleName: string): DestinationDecision {
  return { ok: false, refusal: { reason, ruleId, ruleName } };
}

function policyRefusal(verdict: Verdict): Refusal {
  return { reason: 'policy', ruleId: verdict.ruleId, ruleName: verdict.ruleName, verdict };
}

const UNSPECIFIED_ADDRESSES = new Set(['0.0.0.0', '::']);
