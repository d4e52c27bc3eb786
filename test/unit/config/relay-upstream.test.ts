// A relay whose upstream is an IP literal the gateway refuses (a denied range, the unspecified
// address, one of its own listener or admin addresses) is a config error, not a relay that
// refuses every connection at run time.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT_INVALID, runConfigCheck } from '../../../src/cli/config-check.js';
import {
  BUILT_IN_DENIED_DESTINATIONS,
  ConfigValidationError,
  loadConfigText,
} from '../../../src/config/load.js';
import { unreachableUpstreamProblem } from '../../../src/config/upstream-check.js';

/**
 * Returns a config with an HTTP proxy on 127.0.0.1:3128 and a relay to `upstream`. The upstream
 * is on line 7, or on line 8 when `extra` adds one line.
 */
function relayConfig(upstream: string, extra = ''): string {
  return `version: 1
${extra}listeners:
  - { name: web, type: http-proxy, listen: "127.0.0.1:3128" }
  - name: archive
    type: relay
    listen: "127.0.0.1:11112"
    upstream: "${upstream}"
`;
}

function errorsOf(text: string): string[] {
  try {
    loadConfigText(text, 'gw.yaml', '/etc/tollgate');
  } catch (error) {
    if (error instanceof ConfigValidationError) return error.message.split('\n');
    throw error;
  }
  return [];
}

const REFUSED = 'so the gateway would refuse every connection through this relay';

describe('relay upstream check', () => {
  it.each([
    ['169.254.169.254:80', '169.254.0.0/16 (built in, link-local and cloud metadata)'],
    ['[::ffff:169.254.169.254]:80', '169.254.0.0/16 (built in, link-local and cloud metadata)'],
    ['[fe80::1]:80', 'fe80::/10 (built in, link-local and cloud metadata)'],
    ['[fd00:ec2::254]:80', 'fd00:ec2::254/128 (built in, link-local and cloud metadata)'],
  ])('rejects %s in a built-in denied range', (upstream, range) => {
    expect(errorsOf(relayConfig(upstream))).toEqual([
      `gw.yaml:7:15 listeners[1].upstream: relay "archive" upstream ${upstream} is in the denied range ${range}, ${REFUSED}`,
    ]);
  });

  it('rejects an upstream in denied_destinations', () => {
    const text = relayConfig('192.0.2.7:104', 'denied_destinations: [192.0.2.0/24]\n');
    expect(errorsOf(text)).toEqual([
      `gw.yaml:8:15 listeners[1].upstream: relay "archive" upstream 192.0.2.7:104 is in the denied range 192.0.2.0/24 (denied_destinations), ${REFUSED}`,
    ]);
  });

  it('rejects the unspecified address', () => {
    expect(errorsOf(relayConfig('0.0.0.0:104'))).toEqual([
      `gw.yaml:7:15 listeners[1].upstream: relay "archive" upstream 0.0.0.0:104 is the unspecified address, which reaches the gateway's own host, ${REFUSED}`,
    ]);
  });

  it.each([
    ['127.0.0.1:3128', 'listener "web" listens on 127.0.0.1:3128'],
    ['127.0.0.9:3128', 'listener "web" listens on 127.0.0.1:3128'],
    ['127.0.0.1:11112', 'listener "archive" listens on 127.0.0.1:11112'],
  ])('rejects the gateway address %s', (upstream, owner) => {
    expect(errorsOf(relayConfig(upstream))).toEqual([
      `gw.yaml:7:15 listeners[1].upstream: relay "archive" upstream ${upstream} is the gateway's own address (${owner}), ${REFUSED}`,
    ]);
  });

  it('rejects the admin address', () => {
    const text = relayConfig('127.0.0.1:9090', 'admin: { listen: "localhost:9090" }\n');
    expect(errorsOf(text)).toEqual([
      `gw.yaml:8:15 listeners[1].upstream: relay "archive" upstream 127.0.0.1:9090 is the gateway's own address (the admin API listens on localhost:9090), ${REFUSED}`,
    ]);
  });

  it.each([
    ['a name, resolved per connection', 'metadata.google.internal:80'],
    ['another loopback port', '127.0.0.1:3129'],
    ['another loopback address', '127.0.0.2:104'],
    ['an address next to a denied range', '169.255.0.1:80'],
  ])('accepts %s', (_case, upstream) => {
    expect(errorsOf(relayConfig(upstream))).toEqual([]);
  });

  it('treats an interface address like loopback for a wildcard listener', () => {
    const options = {
      builtInDenied: BUILT_IN_DENIED_DESTINATIONS,
      configuredDenied: [],
      own: [{ address: { host: '0.0.0.0', port: 3128 }, owner: 'listener "web"' }],
      localAddresses: new Set(['10.20.0.1']),
    };
    expect(unreachableUpstreamProblem({ host: '10.20.0.1', port: 3128 }, options)).toBe(
      `is the gateway's own address (listener "web" listens on 0.0.0.0:3128)`,
    );
    expect(unreachableUpstreamProblem({ host: '10.20.0.2', port: 3128 }, options)).toBeNull();
    expect(unreachableUpstreamProblem({ host: '10.20.0.1', port: 3129 }, options)).toBeNull();
  });

  it('makes config check exit 1 naming the line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-relay-'));
    const path = join(dir, 'gw.yaml');
    writeFileSync(path, relayConfig('169.254.169.254:80'));
    const out: string[] = [];
    const err: string[] = [];
    const status = runConfigCheck(
      path,
      { write: (text: string) => out.push(text) } as never,
      { write: (text: string) => err.push(text) } as never,
    );
    expect(status).toBe(EXIT_INVALID);
    expect(out).toEqual([]);
    expect(err.join('')).toContain(
      `${path}:7:15 listeners[1].upstream: relay "archive" upstream 169.254.169.254:80 is in the denied range`,
    );
    expect(err.join('')).toContain(`${path}: invalid config, 1 error`);
  });
});
