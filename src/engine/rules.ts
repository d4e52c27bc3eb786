// Applies the policy's rules to one flow's facts. Rules are taken in file order: an allow rule
// whose conditions match exempts the flow from every rule after it; every other matching rule
// stays active for the flow and fires when its trigger happens.

import type { EventAction } from '../events/ecs.js';
import {
  type CompiledRule,
  cloudStorageMatches,
  destinationAllowed,
  type FlowFacts,
  ruleConditionsMatch,
} from '../policy/model.js';

/** The rules that apply to a flow with these facts, after the first matching allow rule. */
export function activeRules(rules: readonly CompiledRule[], facts: FlowFacts): CompiledRule[] {
  const active: CompiledRule[] = [];
  for (const rule of rules) {
    if (!ruleConditionsMatch(rule, facts)) continue;
    if (rule.kind === 'allow') break;
    active.push(rule);
  }
  return active;
}

/** Active rules whose trigger is the flow's destination alone, with the alert each raises. */
export function destinationVerdicts(
  rules: readonly CompiledRule[],
  facts: FlowFacts,
): Array<{ rule: CompiledRule; eventAction: EventAction }> {
  const fired: Array<{ rule: CompiledRule; eventAction: EventAction }> = [];
  for (const rule of rules) {
    if (rule.kind === 'cloud-storage' && cloudStorageMatches(rule, facts)) {
      fired.push({ rule, eventAction: 'cloud-storage-transfer' });
    } else if (rule.kind === 'destination-not-allowed' && !destinationAllowed(rule, facts)) {
      fired.push({ rule, eventAction: 'destination-not-allowed' });
    }
  }
  return fired;
}

export function isMeterRule(rule: CompiledRule): boolean {
  return (
    rule.kind === 'egress-threshold' || rule.kind === 'bulk-dicom' || rule.kind === 'bulk-copy'
  );
}
