// The compiled policy: what the engine evaluates. Produced by load.ts from validated YAML.
//
// Condition semantics: every condition given in a rule's `when` must match (AND). Within one
// matcher (lists, cidrs, hosts, AE titles, user agents) any entry matching is enough (OR).

import type { CidrSet } from './cidr.js';
import type { HostSuffixSet } from './hosts.js';
import { type CompiledTimeWindow, timeWindowContains } from './time-window.js';

export const RULE_KINDS = [
  'allow',
  'destination-not-allowed',
  'cloud-storage',
  'egress-threshold',
  'bulk-dicom',
  'bulk-copy',
] as const;
export type RuleKind = (typeof RULE_KINDS)[number];

export const POLICY_PROTOCOLS = ['dicom', 'http', 'tls', 'smb', 'unknown'] as const;
export type PolicyProtocol = (typeof POLICY_PROTOCOLS)[number];

export type RuleAction = 'allow' | 'alert' | 'throttle' | 'block';
/** Meter key of a threshold rule: per remote, per (source, remote) pair, or per user. */
export type MeterPer = 'remote' | 'source-remote' | 'user';
/** Meter windows a threshold applies to: UTC hour buckets, the rolling 60 minutes, or both. */
export type MeterWindow = 'hour' | 'rolling' | 'both';

/** A named list or an inline set of entries, merged into one matcher. */
export interface CompiledMatcher {
  cidrs: CidrSet | null;
  hosts: HostSuffixSet | null;
  /** AE titles, trimmed of the spaces DICOM pads them with; compared case-sensitively. */
  aeTitles: Set<string> | null;
  /** User-Agent prefixes in lower case. */
  userAgents: string[];
}

export interface CompiledList {
  name: string;
  description?: string;
  /** The file the list was read from, or the policy file for inline lists. */
  source: string;
  matcher: CompiledMatcher;
}

/** Inclusive port ranges. */
export type PortRanges = Array<[number, number]>;

export interface CompiledConditions {
  destination: CompiledMatcher | null;
  destinationPorts: PortRanges | null;
  source: CompiledMatcher | null;
  /** Lower-case user names; an entry without a domain matches any domain. */
  users: string[] | null;
  aeTitles: Set<string> | null;
  /** Lower-case SMB share names or \\server\share paths; a bare name matches any server. */
  shares: string[] | null;
  protocols: Set<PolicyProtocol> | null;
  time: CompiledTimeWindow | null;
}

export interface CompiledRule {
  id: string;
  name: string;
  kind: RuleKind;
  /** 'allow' for allow rules; 'alert', 'throttle' or 'block' otherwise. */
  action: RuleAction;
  /** throttle: egress bytes per second allowed per remote once the rule fires. */
  rateBytesPerSecond?: number;
  /** 1..100, the ECS event.severity of the alerts this rule raises; 0 for allow rules. */
  severity: number;
  enabled: boolean;
  dryRun: boolean;
  when: CompiledConditions;
  /** cloud-storage: where cloud storage lives. */
  destinations?: CompiledMatcher;
  /** cloud-storage: lower-case User-Agent prefixes. */
  userAgents?: string[];
  /** destination-not-allowed: remotes that are fine. */
  allowed?: CompiledMatcher;
  /** egress-threshold: alert when a meter exceeds this many bytes. */
  thresholdBytes?: number;
  /** bulk-dicom: alert when a meter counts more than this many instances. */
  instances?: number;
  /** bulk-copy: alert when a meter counts more than this many files read or written. */
  files?: number;
  per?: MeterPer;
  window?: MeterWindow;
}

export interface Policy {
  name: string;
  /** The file the policy was read from. */
  source: string;
  /** Networks whose hosts are inside; null when the policy leaves it to the CLI. */
  protectedNetworks: CidrSet | null;
  lists: Map<string, CompiledList>;
  rules: CompiledRule[];
}

/** What the engine knows about a flow when it evaluates rules. */
export interface FlowFacts {
  remoteIp: string;
  remotePort: number;
  remoteName?: string;
  /** The inside endpoint's address. */
  sourceIp: string;
  users?: string[];
  /** Calling and called AE titles of the flow's associations. */
  aeTitles?: string[];
  protocol: string;
  /** SMB shares the flow used, as \\server\share. */
  shares?: string[];
  userAgent?: string;
  /** Epoch milliseconds. */
  ts: number;
}

export interface MatcherFacts {
  ip?: string;
  name?: string;
  aeTitles?: string[];
  userAgent?: string;
}

/** True when any entry of the matcher matches any of the facts given. */
export function matcherMatches(m: CompiledMatcher, facts: MatcherFacts): boolean {
  if (facts.ip !== undefined && m.cidrs?.has(facts.ip)) return true;
  if (facts.name !== undefined && m.hosts?.has(facts.name)) return true;
  if (facts.aeTitles && m.aeTitles) {
    for (const title of facts.aeTitles) if (m.aeTitles.has(title.trim())) return true;
  }
  if (facts.userAgent !== undefined && userAgentMatches(m.userAgents, facts.userAgent)) return true;
  return false;
}

/** True when `userAgent` starts with one of the lower-case `prefixes`, ignoring case. */
export function userAgentMatches(prefixes: readonly string[], userAgent: string): boolean {
  if (prefixes.length === 0) return false;
  const lower = userAgent.toLowerCase();
  return prefixes.some((prefix) => lower.startsWith(prefix));
}

function portMatches(ranges: PortRanges, port: number): boolean {
  return ranges.some(([low, high]) => port >= low && port <= high);
}

/** Strips "DOMAIN\" and "@domain" from a lower-case user name. */
function bareUserName(user: string): string {
  const backslash = user.lastIndexOf('\\');
  const bare = backslash >= 0 ? user.slice(backslash + 1) : user;
  const at = bare.indexOf('@');
  return at >= 0 ? bare.slice(0, at) : bare;
}

/**
 * True when `user` matches one of the lower-case entries. An entry with a domain ("corp\alice",
 * "alice@corp") must match the whole name; a bare entry ("alice") matches that user in any domain.
 */
export function userMatches(entries: readonly string[], user: string): boolean {
  const lower = user.toLowerCase();
  const bare = bareUserName(lower);
  return entries.some((entry) => entry === lower || entry === bare);
}

/**
 * True when `share` (\\server\name) matches one of the lower-case entries: a full path must be
 * equal, a bare name matches that share on any server.
 */
export function shareMatches(entries: readonly string[], share: string): boolean {
  const lower = share.toLowerCase();
  const name = lower.slice(lower.lastIndexOf('\\') + 1);
  return entries.some((entry) => entry === lower || entry === name);
}

/**
 * True when the rule is enabled and every condition in its `when` holds for the flow.
 * Kind-specific fields (thresholds, destinations, allow-lists) are the engine's to apply.
 */
export function ruleConditionsMatch(rule: CompiledRule, facts: FlowFacts): boolean {
  if (!rule.enabled) return false;
  const when = rule.when;

  if (when.destination) {
    const destinationFacts: MatcherFacts = { ip: facts.remoteIp };
    if (facts.remoteName !== undefined) destinationFacts.name = facts.remoteName;
    if (facts.aeTitles) destinationFacts.aeTitles = facts.aeTitles;
    if (!matcherMatches(when.destination, destinationFacts)) return false;
  }
  if (when.destinationPorts && !portMatches(when.destinationPorts, facts.remotePort)) return false;
  if (when.source && !matcherMatches(when.source, { ip: facts.sourceIp })) return false;
  if (when.users) {
    const entries = when.users;
    if (!facts.users?.some((user) => userMatches(entries, user))) return false;
  }
  if (when.aeTitles) {
    const titles = when.aeTitles;
    if (!facts.aeTitles?.some((title) => titles.has(title.trim()))) return false;
  }
  if (when.shares) {
    const entries = when.shares;
    if (!facts.shares?.some((share) => shareMatches(entries, share))) return false;
  }
  if (when.protocols && !when.protocols.has(facts.protocol as PolicyProtocol)) return false;
  if (when.time && !timeWindowContains(when.time, facts.ts)) return false;
  return true;
}

/**
 * True when a cloud-storage rule's destinations or user agents match the flow.
 * Returns false for rules of other kinds.
 */
export function cloudStorageMatches(rule: CompiledRule, facts: FlowFacts): boolean {
  if (rule.kind !== 'cloud-storage') return false;
  const matcherFacts: MatcherFacts = { ip: facts.remoteIp };
  if (facts.remoteName !== undefined) matcherFacts.name = facts.remoteName;
  if (facts.userAgent !== undefined) matcherFacts.userAgent = facts.userAgent;
  if (rule.destinations && matcherMatches(rule.destinations, matcherFacts)) return true;
  return (
    facts.userAgent !== undefined &&
    rule.userAgents !== undefined &&
    userAgentMatches(rule.userAgents, facts.userAgent)
  );
}

/**
 * True when a destination-not-allowed rule's allow-list covers the flow's remote.
 * AE titles are names the peers claim for themselves, so pair them with cidrs or hosts in a list.
 */
export function destinationAllowed(rule: CompiledRule, facts: FlowFacts): boolean {
  if (!rule.allowed) return false;
  const matcherFacts: MatcherFacts = { ip: facts.remoteIp };
  if (facts.remoteName !== undefined) matcherFacts.name = facts.remoteName;
  if (facts.aeTitles) matcherFacts.aeTitles = facts.aeTitles;
  return matcherMatches(rule.allowed, matcherFacts);
}
