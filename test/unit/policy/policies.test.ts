import { describe, expect, test } from 'vitest';
import {
  DEFAULT_POLICY_PATH,
  loadDefaultPolicy,
  loadPolicyFile,
} from '../../../src/policy/load.js';
import {
  type CompiledRule,
  cloudStorageMatches,
  destinationAllowed,
  type FlowFacts,
  ruleConditionsMatch,
} from '../../../src/policy/model.js';

function rule(rules: CompiledRule[], id: string): CompiledRule {
  const found = rules.find((r) => r.id === id);
  if (!found) throw new Error(`rule ${id} not found`);
  return found;
}

const flow = (facts: Partial<FlowFacts>): FlowFacts => ({
  remoteIp: '192.0.2.200',
  remotePort: 443,
  sourceIp: '10.20.1.5',
  protocol: 'tls',
  ts: Date.parse('2024-03-06T12:00:00Z'),
  ...facts,
});

describe('default policy', () => {
  const policy = loadDefaultPolicy();

  test('loads from the package', () => {
    expect(DEFAULT_POLICY_PATH).toMatch(/policies[/\\]default\.yaml$/);
    expect(policy.name).toBe('Default tollgate policy');
    expect(policy.rules.map((r) => r.id)).toEqual([
      'cloud-storage',
      'egress-threshold',
      'bulk-dicom',
    ]);
  });

  test('protected networks are RFC 1918 and ULA', () => {
    const networks = policy.protectedNetworks!;
    for (const ip of ['10.1.1.1', '172.16.0.1', '172.31.255.254', '192.168.0.1', 'fd00::1']) {
      expect(networks.has(ip)).toBe(true);
    }
    for (const ip of ['172.32.0.1', '8.8.8.8', '2001:db8::1', '100.64.0.1']) {
      expect(networks.has(ip)).toBe(false);
    }
  });

  test('every rule alerts and none blocks', () => {
    for (const r of policy.rules) {
      expect(r.action).toBe('alert');
      expect(r.enabled).toBe(true);
      expect(r.dryRun).toBe(false);
      expect(r.severity).toBeGreaterThanOrEqual(1);
    }
  });

  test('egress threshold is 50 MB per remote, both windows', () => {
    const r = rule(policy.rules, 'egress-threshold');
    expect(r.thresholdBytes).toBe(50_000_000);
    expect(r.per).toBe('remote');
    expect(r.window).toBe('both');
  });

  test('bulk DICOM is 100 instances per remote per hour', () => {
    const r = rule(policy.rules, 'bulk-dicom');
    expect(r.instances).toBe(100);
    expect(r.per).toBe('remote');
    expect(r.window).toBe('hour');
  });

  test('cloud storage matches rclone targets', () => {
    const r = rule(policy.rules, 'cloud-storage');
    const names = [
      's3.eu-west-1.amazonaws.com',
      'mybucket.s3.amazonaws.com',
      'storage.googleapis.com',
      'www.googleapis.com',
      'acct.blob.core.windows.net',
      'graph.microsoft.com',
      'contoso-my.sharepoint.com',
      'content.dropboxapi.com',
      'upload.box.com',
      'g.api.mega.co.nz',
      'api.backblazeb2.com',
      's3.eu-central-1.wasabisys.com',
      'acct.r2.cloudflarestorage.com',
      'fra1.digitaloceanspaces.com',
      'wetransfer.com',
      'transfer.sh',
    ];
    for (const name of names) {
      expect(cloudStorageMatches(r, flow({ remoteName: name })), name).toBe(true);
    }
    for (const name of ['evilamazonaws.com', 'pacs.example.org', 'example.com']) {
      expect(cloudStorageMatches(r, flow({ remoteName: name })), name).toBe(false);
    }
  });

  test('cloud storage matches the rclone user agent', () => {
    const r = rule(policy.rules, 'cloud-storage');
    expect(cloudStorageMatches(r, flow({ userAgent: 'rclone/' }))).toBe(true);
    expect(cloudStorageMatches(r, flow({ userAgent: 'rclone/v1.66.0' }))).toBe(true);
    expect(cloudStorageMatches(r, flow({ userAgent: 'curl/7.88.1' }))).toBe(false);
  });
});

describe('example site policy', () => {
  const policy = loadPolicyFile('policies/examples/site.yaml');

  test('loads with all its lists', () => {
    expect([...policy.lists.keys()].sort()).toEqual([
      'allowed-archives',
      'backup-site',
      'cloud-storage',
      'vendor-networks',
    ]);
    expect(policy.lists.get('cloud-storage')?.source).toBe('policies/lists/cloud-storage.yaml');
  });

  test('uses every rule kind and both actions', () => {
    const kinds = new Set(policy.rules.map((r) => r.kind));
    expect(kinds).toEqual(
      new Set([
        'allow',
        'cloud-storage',
        'destination-not-allowed',
        'egress-threshold',
        'bulk-dicom',
        'bulk-copy',
      ]),
    );
    expect(policy.rules.some((r) => r.action === 'block')).toBe(true);
    expect(rule(policy.rules, 'vendor-bulk-copy').files).toBe(20);
    expect(rule(policy.rules, 'vendor-bulk-copy').when.shares).toEqual(['exports']);
    expect(rule(policy.rules, 'egress-threshold-block').dryRun).toBe(true);
    expect(rule(policy.rules, 'egress-threshold-block').thresholdBytes).toBe(2 * 2 ** 30);
  });

  test('backup allow rule needs list, port and night', () => {
    const r = rule(policy.rules, 'backup-site');
    const night = Date.parse('2024-03-06T23:30:00+01:00');
    const day = Date.parse('2024-03-06T12:00:00+01:00');
    const backup = { remoteIp: '192.0.2.70', remotePort: 443, ts: night };
    expect(ruleConditionsMatch(r, flow(backup))).toBe(true);
    expect(ruleConditionsMatch(r, flow({ ...backup, remotePort: 8050 }))).toBe(true);
    expect(ruleConditionsMatch(r, flow({ ...backup, remotePort: 22 }))).toBe(false);
    expect(ruleConditionsMatch(r, flow({ ...backup, ts: day }))).toBe(false);
    expect(ruleConditionsMatch(r, flow({ ...backup, remoteIp: '192.0.2.1' }))).toBe(false);
    expect(
      ruleConditionsMatch(
        r,
        flow({ ...backup, remoteIp: '192.0.2.1', remoteName: 'backup.dc2.example.org' }),
      ),
    ).toBe(true);
  });

  test('allow-list covers archives by address, name and AE title', () => {
    const r = rule(policy.rules, 'destination-not-allowed');
    expect(destinationAllowed(r, flow({ remoteIp: '198.51.100.9' }))).toBe(true);
    expect(destinationAllowed(r, flow({ remoteName: 'archive.example.org' }))).toBe(true);
    expect(destinationAllowed(r, flow({ aeTitles: ['OFFSITE_ARCHIVE '] }))).toBe(true);
    expect(destinationAllowed(r, flow({ aeTitles: ['offsite_archive'] }))).toBe(false);
    expect(destinationAllowed(r, flow({ remoteIp: '2001:db8:100:5::1' }))).toBe(true);
    expect(destinationAllowed(r, flow({}))).toBe(false);
  });

  test('destination-not-allowed applies to DICOM and SMB only', () => {
    const r = rule(policy.rules, 'destination-not-allowed');
    expect(ruleConditionsMatch(r, flow({ protocol: 'dicom' }))).toBe(true);
    expect(ruleConditionsMatch(r, flow({ protocol: 'smb' }))).toBe(true);
    expect(ruleConditionsMatch(r, flow({ protocol: 'http' }))).toBe(false);
  });

  test('vendor window rule needs vendor source, AE title and daytime', () => {
    const r = rule(policy.rules, 'vendor-outside-window');
    const vendor = {
      sourceIp: '203.0.113.10',
      aeTitles: ['VENDOR_SVC'],
      ts: Date.parse('2024-03-06T10:00:00+01:00'),
    };
    expect(ruleConditionsMatch(r, flow(vendor))).toBe(true);
    expect(
      ruleConditionsMatch(r, flow({ ...vendor, ts: Date.parse('2024-03-06T20:00:00+01:00') })),
    ).toBe(false);
    expect(ruleConditionsMatch(r, flow({ ...vendor, aeTitles: ['OTHER'] }))).toBe(false);
    expect(ruleConditionsMatch(r, flow({ ...vendor, aeTitles: undefined }))).toBe(false);
    expect(ruleConditionsMatch(r, flow({ ...vendor, sourceIp: '203.0.113.200' }))).toBe(false);
  });

  test('user condition ignores case and domain', () => {
    const r = rule(policy.rules, 'smb-service-account');
    const smb = { protocol: 'smb' };
    expect(ruleConditionsMatch(r, flow({ ...smb, users: ['hospital\\SVC-SCAN'] }))).toBe(true);
    expect(ruleConditionsMatch(r, flow({ ...smb, users: ['svc-scan'] }))).toBe(false);
    expect(ruleConditionsMatch(r, flow({ ...smb, users: ['other\\svc-scan'] }))).toBe(false);
    expect(ruleConditionsMatch(r, flow({ ...smb }))).toBe(false);
  });

  test('disabled rule never matches', () => {
    const r = { ...rule(policy.rules, 'bulk-dicom'), enabled: false };
    expect(ruleConditionsMatch(r, flow({}))).toBe(false);
    expect(ruleConditionsMatch(rule(policy.rules, 'bulk-dicom'), flow({}))).toBe(true);
  });
});
