import { describe, expect, it } from 'vitest';
import { BUILT_IN_DENIED_DESTINATIONS } from '../../../src/config/load.js';
import { CidrSet } from '../../../src/policy/cidr.js';
import { DestinationGuard } from '../../../src/proxy/destination.js';

// No lookup here leaves the process: names resolve through this table.
const table: Record<string, string[]> = {
  'metadata.example.org': ['127.0.0.2', '169.254.169.254'],
  'files.example.org': ['127.0.0.2'],
};

function guard(policyRule: string | null = null) {
  return new DestinationGuard({
    deniedDestinations: CidrSet.parse(BUILT_IN_DENIED_DESTINATIONS),
    protectedNetworks: () => CidrSet.parse(['127.0.0.1/32']),
    ownAddresses: [{ host: '127.0.0.1', port: 3128 }],
    policyRefusal: (facts) =>
      policyRule !== null && facts.remoteIp === '127.0.0.2'
        ? {
            action: 'block',
            ruleId: policyRule,
            ruleName: 'test',
            eventAction: 'destination-not-allowed',
            dryRun: false,
          }
        : null,
    lookup: async (name) => (table[name] ?? []).map((address) => ({ address, family: 4 })),
  });
}

const client = { ip: '127.0.0.1', port: 40000 };
const check = (host: string, port = 80, rule: string | null = null) =>
  guard(rule).check({ client, host, port, ts: 0 });

describe('DestinationGuard', () => {
  it('refuses metadata addresses', async () => {
    for (const host of ['169.254.169.254', 'fd00:ec2::254', 'fe80::1']) {
      expect(await check(host)).toMatchObject({
        ok: false,
        refusal: { ruleId: 'denied-destinations' },
      });
    }
  });

  it('refuses a name when any address is denied', async () => {
    expect(await check('metadata.example.org')).toMatchObject({
      ok: false,
      refusal: { reason: 'denied-destination', address: '169.254.169.254' },
    });
  });

  it('returns the checked address for an allowed name', async () => {
    expect(await check('files.example.org')).toEqual({
      ok: true,
      address: '127.0.0.2',
      name: 'files.example.org',
    });
  });

  it('refuses unresolvable and invalid names', async () => {
    expect(await check('missing.example.org')).toMatchObject({
      ok: false,
      refusal: { reason: 'not-resolved' },
    });
    expect(await check('bad_name..example')).toMatchObject({
      ok: false,
      refusal: { reason: 'invalid-name' },
    });
  });

  it('refuses the gateway listener itself', async () => {
    expect(await check('127.0.0.1', 3128)).toMatchObject({
      ok: false,
      refusal: { reason: 'gateway-address' },
    });
    expect(await check('127.0.0.5', 3128)).toMatchObject({
      ok: false,
      refusal: { reason: 'gateway-address' },
    });
    expect(await check('127.0.0.2', 3129)).toMatchObject({ ok: true });
  });

  it('refuses the gateway in IPv4-mapped IPv6 spellings', async () => {
    for (const host of ['::ffff:127.0.0.1', '::ffff:7f00:1', '0:0:0:0:0:ffff:7f00:5']) {
      expect(await check(host, 3128)).toMatchObject({
        ok: false,
        refusal: {
          reason: 'gateway-address',
          address: host.endsWith('5') ? '127.0.0.5' : '127.0.0.1',
        },
      });
    }
  });

  it('refuses the gateway in long IPv6 spellings', async () => {
    const onIpv6 = new DestinationGuard({
      deniedDestinations: CidrSet.parse(BUILT_IN_DENIED_DESTINATIONS),
      protectedNetworks: () => CidrSet.parse(['::1/128']),
      ownAddresses: [{ host: '::1', port: 9180 }],
      policyRefusal: () => null,
      lookup: async () => [],
    });
    for (const host of ['0:0:0:0:0:0:0:1', '::0:1', '0000::0001']) {
      expect(await onIpv6.check({ client, host, port: 9180, ts: 0 })).toMatchObject({
        ok: false,
        refusal: { reason: 'gateway-address', address: '::1' },
      });
    }
  });

  it('refuses unspecified addresses on any port', async () => {
    for (const host of ['0.0.0.0', '::', '0:0:0:0:0:0:0:0', '::ffff:0.0.0.0']) {
      expect(await check(host, 22)).toMatchObject({
        ok: false,
        refusal: { reason: 'denied-destination' },
      });
    }
  });

  it('connects to the IPv4 address a mapped name carries', async () => {
    table['mapped.example.org'] = ['::ffff:127.0.0.2'];
    expect(await check('mapped.example.org')).toEqual({
      ok: true,
      address: '127.0.0.2',
      name: 'mapped.example.org',
    });
  });

  it('applies the policy verdict on resolved addresses', async () => {
    expect(await check('files.example.org', 80, 'no-files')).toMatchObject({
      ok: false,
      refusal: { reason: 'policy', ruleId: 'no-files', address: '127.0.0.2' },
    });
  });
});
