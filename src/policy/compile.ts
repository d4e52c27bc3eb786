// Turns a schema-checked policy into the compiled model, checking what spans fields and files:
// which fields each rule kind requires and allows, duplicate rule ids, and references to lists.

import { CidrSet } from './cidr.js';
import { HostSuffixSet } from './hosts.js';
import type {
  CompiledConditions,
  CompiledList,
  CompiledMatcher,
  CompiledRule,
  PolicyProtocol,
  RuleKind,
} from './model.js';
import type { ListBody, MatcherRefs, RuleInput, WhenInput } from './schema.js';
import { systemTimeZone, WEEKDAYS, type Weekday } from './time-window.js';

export type PathSegment = string | number;

/** Records a validation error at a key path of the file being compiled. */
export type Reporter = (
  path: PathSegment[],
  message: string,
  options?: { atKey?: boolean },
) => void;

/** ECS event.severity given to a rule's alerts when the rule sets none. */
export const DEFAULT_SEVERITY: Record<Exclude<RuleKind, 'allow'>, number> = {
  'destination-not-allowed': 47,
  'cloud-storage': 73,
  'egress-threshold': 47,
  'bulk-dicom': 73,
  'bulk-copy': 73,
};

type KindField =
  | 'action'
  | 'severity'
  | 'dry_run'
  | 'rate'
  | 'destinations'
  | 'user_agents'
  | 'allowed'
  | 'threshold'
  | 'instances'
  | 'files'
  | 'per'
  | 'window';

interface KindFields {
  /** Each inner list is a group of which at least one field must be present. */
  required: KindField[][];
  allowed: KindField[];
}

const ALERTING: KindField[] = ['action', 'severity', 'dry_run', 'rate'];

const KIND_FIELDS: Record<RuleKind, KindFields> = {
  allow: { required: [], allowed: [] },
  'destination-not-allowed': { required: [['allowed']], allowed: [...ALERTING, 'allowed'] },
  'cloud-storage': {
    required: [['destinations', 'user_agents']],
    allowed: [...ALERTING, 'destinations', 'user_agents'],
  },
  'egress-threshold': {
    required: [['threshold']],
    allowed: [...ALERTING, 'threshold', 'per', 'window'],
  },
  'bulk-dicom': { required: [['instances']], allowed: [...ALERTING, 'instances', 'per', 'window'] },
  'bulk-copy': {
    required: [['files', 'threshold']],
    allowed: [...ALERTING, 'files', 'threshold', 'per', 'window'],
  },
};

const ALL_KIND_FIELDS = Object.keys({
  action: 0,
  severity: 0,
  dry_run: 0,
  rate: 0,
  destinations: 0,
  user_agents: 0,
  allowed: 0,
  threshold: 0,
  instances: 0,
  files: 0,
  per: 0,
  window: 0,
} satisfies Record<KindField, 0>) as KindField[];

/** Builds a matcher from list bodies and inline entries, all checked by the schema already. */
export function buildMatcher(
  bodies: Array<ListBody | MatcherRefs>,
  extra: CompiledMatcher[] = [],
): CompiledMatcher {
  const cidrs: string[] = [];
  const hosts: string[] = [];
  const aeTitles: string[] = [];
  const userAgents: string[] = [];
  for (const body of bodies) {
    cidrs.push(...(body.cidrs ?? []));
    hosts.push(...(body.hosts ?? []));
    aeTitles.push(...(body.ae_titles ?? []).map((title) => title.trim()));
    if ('user_agents' in body)
      userAgents.push(...(body.user_agents ?? []).map((ua) => ua.toLowerCase()));
  }

  const cidrSets = extra.flatMap((m) => (m.cidrs ? [m.cidrs] : []));
  if (cidrs.length > 0) cidrSets.push(CidrSet.parse(cidrs));
  const hostSet = new HostSuffixSet(hosts);
  for (const m of extra) for (const entry of m.hosts?.entries ?? []) hostSet.add(entry);
  const aeSet = new Set(aeTitles);
  for (const m of extra) for (const title of m.aeTitles ?? []) aeSet.add(title);
  for (const m of extra) userAgents.push(...m.userAgents);

  return {
    cidrs: cidrSets.length > 0 ? CidrSet.union(cidrSets) : null,
    hosts: hostSet.size > 0 ? hostSet : null,
    aeTitles: aeSet.size > 0 ? aeSet : null,
    userAgents: [...new Set(userAgents)],
  };
}

/** A rule that passed the schema, with its position in the file's `rules`. */
export interface IndexedRule {
  index: number;
  rule: RuleInput;
}

export class RuleCompiler {
  private errorCount = 0;

  /** `brokenLists` are lists already reported as invalid: references to them are not errors. */
  constructor(
    private readonly lists: Map<string, CompiledList>,
    private readonly brokenLists: Set<string>,
    private readonly report: Reporter,
  ) {}

  /** Compiles the rules, reporting every problem found; returns null when any was found. */
  compileRules(input: IndexedRule[]): CompiledRule[] | null {
    const before = this.errorCount;
    const rules: CompiledRule[] = [];
    const firstIndexOfId = new Map<string, number>();

    for (const { index, rule } of input) {
      const path: PathSegment[] = ['rules', index];
      const first = firstIndexOfId.get(rule.id);
      if (first !== undefined) {
        this.fail([...path, 'id'], `duplicate rule id "${rule.id}", first used by rules[${first}]`);
      } else {
        firstIndexOfId.set(rule.id, index);
      }
      const compiled = this.compileRule(rule, path);
      if (compiled) rules.push(compiled);
    }
    return this.errorCount === before ? rules : null;
  }

  private fail(path: PathSegment[], message: string, options?: { atKey?: boolean }): void {
    this.errorCount++;
    this.report(path, message, options);
  }

  private compileRule(rule: RuleInput, path: PathSegment[]): CompiledRule | null {
    const before = this.errorCount;
    const fields = KIND_FIELDS[rule.kind];

    for (const field of ALL_KIND_FIELDS) {
      if (rule[field] !== undefined && !fields.allowed.includes(field)) {
        this.fail([...path, field], `${field} is not allowed for kind ${rule.kind}`, {
          atKey: true,
        });
      }
    }
    for (const group of fields.required) {
      if (group.every((field) => rule[field] === undefined)) {
        const names = group.join(' or ');
        this.fail(path, `kind ${rule.kind} requires ${names}`);
      }
    }

    if (rule.action === 'throttle' && rule.rate === undefined) {
      this.fail(
        [...path, 'action'],
        'action throttle requires rate (bytes per second, like "1MB")',
      );
    } else if (rule.rate !== undefined && rule.action !== 'throttle' && rule.kind !== 'allow') {
      this.fail([...path, 'rate'], 'rate is allowed only with action throttle', { atKey: true });
    } else if (rule.rate === 0) {
      this.fail([...path, 'rate'], 'rate must be at least 1 byte per second');
    }

    const when = this.compileConditions(rule.when, [...path, 'when']);
    const destinations = rule.destinations
      ? this.compileRefs(rule.destinations, [...path, 'destinations'])
      : undefined;
    const allowed = rule.allowed ? this.compileRefs(rule.allowed, [...path, 'allowed']) : undefined;
    if (this.errorCount !== before || !when) return null;

    const isAllow = rule.kind === 'allow';
    const compiled: CompiledRule = {
      id: rule.id,
      name: rule.name,
      kind: rule.kind,
      action: isAllow ? 'allow' : (rule.action ?? 'alert'),
      severity: isAllow
        ? 0
        : (rule.severity ?? DEFAULT_SEVERITY[rule.kind as Exclude<RuleKind, 'allow'>]),
      enabled: rule.enabled ?? true,
      dryRun: rule.dry_run ?? false,
      when,
    };
    if (destinations) compiled.destinations = destinations;
    if (rule.user_agents) compiled.userAgents = rule.user_agents.map((ua) => ua.toLowerCase());
    if (allowed) compiled.allowed = allowed;
    if (rule.rate !== undefined) compiled.rateBytesPerSecond = rule.rate;
    if (rule.threshold !== undefined) compiled.thresholdBytes = rule.threshold;
    if (rule.instances !== undefined) compiled.instances = rule.instances;
    if (rule.files !== undefined) compiled.files = rule.files;
    if (
      rule.kind === 'egress-threshold' ||
      rule.kind === 'bulk-dicom' ||
      rule.kind === 'bulk-copy'
    ) {
      compiled.per = rule.per ?? 'remote';
      compiled.window = rule.window ?? 'both';
    }
    return compiled;
  }

  /** Resolves list names to compiled lists, reporting each unknown name. */
  private resolveLists(names: string[] | undefined, path: PathSegment[]): CompiledMatcher[] | null {
    const matchers: CompiledMatcher[] = [];
    let ok = true;
    (names ?? []).forEach((name, index) => {
      const list = this.lists.get(name);
      if (list) {
        matchers.push(list.matcher);
      } else if (this.brokenLists.has(name)) {
        ok = false;
      } else {
        ok = false;
        const known = [...this.lists.keys()].join(', ') || 'none';
        this.fail([...path, index], `unknown list "${name}" (defined lists: ${known})`);
      }
    });
    return ok ? matchers : null;
  }

  private compileRefs(refs: MatcherRefs, path: PathSegment[]): CompiledMatcher | null {
    const lists = this.resolveLists(refs.lists, [...path, 'lists']);
    if (!lists) return null;
    return buildMatcher([refs], lists);
  }

  private compileConditions(
    when: WhenInput | undefined,
    path: PathSegment[],
  ): CompiledConditions | null {
    const conditions: CompiledConditions = {
      destination: null,
      destinationPorts: null,
      source: null,
      users: null,
      aeTitles: null,
      shares: null,
      protocols: null,
      time: null,
    };
    if (!when) return conditions;
    let ok = true;

    if (when.destination) {
      const { ports, ...refs } = when.destination;
      if (refs.lists || refs.cidrs || refs.hosts) {
        conditions.destination = this.compileRefs(refs, [...path, 'destination']);
        ok &&= conditions.destination !== null;
      }
      if (ports) conditions.destinationPorts = ports;
    }
    if (when.source) {
      conditions.source = this.compileRefs(when.source, [...path, 'source']);
      ok &&= conditions.source !== null;
    }
    if (when.users) conditions.users = when.users.map((user) => user.toLowerCase());
    if (when.ae_titles) conditions.aeTitles = new Set(when.ae_titles.map((title) => title.trim()));
    if (when.shares) conditions.shares = when.shares.map((share) => share.toLowerCase());
    if (when.protocols) conditions.protocols = new Set<PolicyProtocol>(when.protocols);
    if (when.time) {
      const days: readonly Weekday[] = when.time.days ?? WEEKDAYS;
      conditions.time = {
        fromMinute: when.time.from,
        toMinute: when.time.to,
        dayMask: days.reduce((mask, day) => mask | (1 << WEEKDAYS.indexOf(day)), 0),
        timeZone: when.time.timezone ?? systemTimeZone(),
      };
    }
    return ok ? conditions : null;
  }
}
