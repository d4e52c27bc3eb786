import { describe, expect, it } from 'vitest';
import { runConfigCheck } from '../../../src/cli/config-check.js';
import { loadDefaultConfig } from '../../../src/config/default.js';
import {
  BUILT_IN_DENIED_DESTINATIONS,
  ConfigValidationError,
  DEFAULT_GATEWAY_LIMITS,
  loadConfigText,
} from '../../../src/config/load.js';
import { parseDuration, parseHostPort } from '../../../src/config/schema.js';

function errorsOf(text: string): string[] {
  try {
    loadConfigText(text, 'gw.yaml', '/etc/tollgate');
  } catch (error) {
    if (error instanceof ConfigValidationError) return error.message.split('\n');
    throw error;
  }
  throw new Error('expected the config to be invalid');
}

const COMPLETE = `version: 1
policy: policies/site.yaml
protected_networks: [10.20.0.0/16]
source_networks: [10.20.4.0/24, "2001:db8:20::/48"]
denied_destinations: [192.0.2.0/24]
events: /var/log/tollgate/events.jsonl
listeners:
  - name: archive
    type: relay
    listen: 0.0.0.0:11112
    upstream: archive.example.org:104
    protocol: dicom
  - name: web
    type: http-proxy
    listen: "[::1]:3128"
  - name: socks
    type: socks5
    listen: 10.20.0.1:1080
    users: [{ username: vendor, password: s3cret }]
admin: { listen: 127.0.0.1:9090 }
limits:
  max_connections: 100
  max_connections_per_source: 10
  connect_timeout: 5s
  idle_timeout: 10m
  header_timeout: 500ms
  handshake_timeout: 2
  drain_timeout: 1h
`;

describe('loadConfigText', () => {
  it('reads every key of a complete config', () => {
    const config = loadConfigText(COMPLETE, 'gw.yaml', '/etc/tollgate');
    expect(config.policyPath).toBe('/etc/tollgate/policies/site.yaml');
    expect(config.protectedNetworks).toEqual(['10.20.0.0/16']);
    expect(config.sourceNetworks).toEqual(['10.20.4.0/24', '2001:db8:20::/48']);
    expect(config.deniedDestinations).toEqual([...BUILT_IN_DENIED_DESTINATIONS, '192.0.2.0/24']);
    expect(config.events).toBe('/var/log/tollgate/events.jsonl');
    expect(config.listeners).toEqual([
      {
        name: 'archive',
        type: 'relay',
        listen: { host: '0.0.0.0', port: 11112 },
        upstream: { host: 'archive.example.org', port: 104 },
        protocol: 'dicom',
      },
      { name: 'web', type: 'http-proxy', listen: { host: '::1', port: 3128 } },
      {
        name: 'socks',
        type: 'socks5',
        listen: { host: '10.20.0.1', port: 1080 },
        users: [{ username: 'vendor', password: 's3cret' }],
      },
    ]);
    expect(config.admin).toEqual({ host: '127.0.0.1', port: 9090 });
    expect(config.limits).toEqual({
      maxConnections: 100,
      maxConnectionsPerSource: 10,
      connectTimeoutMs: 5000,
      idleTimeoutMs: 600_000,
      headerTimeoutMs: 500,
      handshakeTimeoutMs: 2000,
      drainTimeoutMs: 3_600_000,
    });
  });

  it('fills defaults for a minimal config', () => {
    const config = loadConfigText(
      'version: 1\nlisteners: [{ name: p, type: http-proxy, listen: "127.0.0.1:3128" }]\n',
      'gw.yaml',
      '/etc',
    );
    expect(config.policyPath).toBeNull();
    expect(config.sourceNetworks).toBeNull();
    expect(config.events).toBe('-');
    expect(config.includePhi).toBe(false);
    expect(config.limits).toEqual(DEFAULT_GATEWAY_LIMITS);
  });

  it('reports errors with line and key path', () => {
    const errors = errorsOf(`version: 1
listeners:
  - name: a
    type: relay
    listen: 127.0.0.1:99999
  - name: b
    type: gopher
    listen: 127.0.0.1:70
  - name: c
    type: http-proxy
    listen: 127.0.0.1:3128
    colour: blue
limits:
  idle_timeout: soon
`);
    expect(errors).toContain(
      'gw.yaml:5:13 listeners[0].listen: port 99999 in "127.0.0.1:99999" is outside 1-65535',
    );
    expect(errors).toContain('gw.yaml:3:5 listeners[0].upstream: missing required key');
    expect(errors).toContain(
      'gw.yaml:7:11 listeners[1].type: invalid listener type; expected one of "relay", "http-proxy", "socks5"',
    );
    expect(errors).toContain('gw.yaml:12:5 listeners[2].colour: unknown key "colour"');
    expect(errors).toContain(
      'gw.yaml:14:17 limits.idle_timeout: expected a duration like "10s", "500ms" or "5m", got "soon"',
    );
    expect(errors).toHaveLength(5);
  });

  it('rejects duplicate listener names and addresses', () => {
    const errors = errorsOf(`version: 1
listeners:
  - { name: a, type: http-proxy, listen: "127.0.0.1:3128" }
  - { name: a, type: socks5, listen: "127.0.0.1:3128" }
`);
    expect(errors).toEqual([
      'gw.yaml:4:13 listeners[1].name: listener name "a" is already used by listeners[0]',
      'gw.yaml:4:38 listeners[1].listen: address 127.0.0.1:3128 is already used by listeners[0]',
    ]);
  });

  it('requires a listener and version 1', () => {
    expect(errorsOf('version: 2\nlisteners: []\n')).toEqual([
      'gw.yaml:1:10 version: unsupported config version 2; this tollgate reads version 1',
      'gw.yaml:2:12 listeners: configure at least one listener',
    ]);
  });

  it('reports invalid YAML with its position', () => {
    expect(errorsOf('version: 1\nlisteners: [\n')[0]).toMatch(/^gw\.yaml:3:1 invalid YAML: /);
  });

  it('rejects SOCKS credentials longer than RFC 1929 allows', () => {
    const long = 'x'.repeat(256);
    const errors = errorsOf(
      `version: 1\nlisteners: [{ name: s, type: socks5, listen: "127.0.0.1:1080", users: [{ username: ${long}, password: p }] }]\n`,
    );
    expect(errors[0]).toContain('listeners[0].users[0].username: must be at most 255 bytes');
  });
});

describe('embedded default config', () => {
  it('listens on loopback only', () => {
    const config = loadDefaultConfig();
    expect(config.listeners.length).toBeGreaterThan(0);
    for (const listener of config.listeners) expect(listener.listen.host).toBe('127.0.0.1');
    expect(config.sourceNetworks).toEqual(['127.0.0.0/8', '::1/128']);
  });
});

describe('parseHostPort', () => {
  it.each([
    ['127.0.0.1:80', { host: '127.0.0.1', port: 80 }],
    ['[2001:db8::1]:443', { host: '2001:db8::1', port: 443 }],
    ['pacs.example.org:104', { host: 'pacs.example.org', port: 104 }],
    ['127.0.0.1.:80', { host: '127.0.0.1', port: 80 }],
  ])('parses %s', (text, expected) => {
    expect(parseHostPort(text)).toEqual(expected);
  });

  it.each(['2001:db8::1', '127.0.0.1', ':80', '[nothost]:80', 'a b:1', '127.0.0.1:0', 80])(
    'rejects %s',
    (text) => {
      expect(typeof parseHostPort(text)).toBe('string');
    },
  );
});

describe('parseDuration', () => {
  it('converts units to milliseconds', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('2m')).toBe(120_000);
    expect(parseDuration(3)).toBe(3000);
  });

  it('rejects zero and unknown units', () => {
    expect(parseDuration('0s')).toMatch(/longer than 0/);
    expect(parseDuration('3 days')).toMatch(/expected a duration/);
  });
});

describe('deploy/tollgate.yaml', () => {
  it('passes config check', () => {
    const out: string[] = [];
    const err: string[] = [];
    const status = runConfigCheck(
      'deploy/tollgate.yaml',
      { write: (text: string) => out.push(text) } as never,
      { write: (text: string) => err.push(text) } as never,
    );
    expect(err).toEqual([]);
    expect(status).toBe(0);
    expect(out.join('')).toContain('offsite-archive (relay 10.20.0.1:11112)');
  });
});
