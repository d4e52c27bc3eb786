import { describe, expect, it } from 'vitest';
import { ConfigValidationError, loadConfigText } from '../../../src/config/load.js';

function config(admin: string): string {
  return `version: 1
protected_networks: [10.20.0.0/16]
listeners:
  - { name: web, type: http-proxy, listen: "127.0.0.1:3128" }
${admin}
`;
}

function errorsOf(text: string): string[] {
  try {
    loadConfigText(text, 'gw.yaml', '/etc/tollgate');
  } catch (error) {
    if (error instanceof ConfigValidationError) return error.message.split('\n');
    throw error;
  }
  throw new Error('expected the config to be invalid');
}

describe('admin section of the gateway config', () => {
  it('reads the listen address and resolves the token file', () => {
    const loaded = loadConfigText(
      config('admin:\n  listen: 127.0.0.1:9180\n  token_file: secrets/admin.token'),
      'gw.yaml',
      '/etc/tollgate',
    );
    expect(loaded.admin).toEqual({ host: '127.0.0.1', port: 9180 });
    expect(loaded.adminTokenFile).toBe('/etc/tollgate/secrets/admin.token');
    expect(loaded.adminAllowNonLoopback).toBe(false);
  });

  it('leaves the admin API off without the section', () => {
    const loaded = loadConfigText(config(''), 'gw.yaml', '/etc/tollgate');
    expect(loaded.admin).toBeNull();
    expect(loaded.adminTokenFile).toBeNull();
  });

  it.each(['127.0.0.1:9180', '"127.9.9.9:9180"', '"[::1]:9180"', 'localhost:9180'])(
    'accepts the loopback address %s',
    (listen) => {
      const loaded = loadConfigText(config(`admin: { listen: ${listen} }`), 'gw.yaml', '/etc');
      expect(loaded.admin?.port).toBe(9180);
    },
  );

  it('rejects a non-loopback address naming the key and line', () => {
    const errors = errorsOf(config('admin:\n  listen: 0.0.0.0:9180'));
    expect(errors).toEqual([
      'gw.yaml:6:11 admin.listen: admin address "0.0.0.0" is not a loopback address (127.0.0.0/8, ::1, localhost); the admin API can reload the policy and read the meters, so bind it to loopback or set admin.allow_non_loopback: true',
    ]);
  });

  it.each(['"[::]:9180"', '192.0.2.10:9180', '"[2001:db8::1]:9180"', 'admin.example.org:9180'])(
    'rejects the non-loopback address %s',
    (listen) => {
      const errors = errorsOf(config(`admin: { listen: ${listen} }`));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(
        /^gw\.yaml:5:\d+ admin\.listen: admin address .* is not a loopback/,
      );
    },
  );

  it('accepts a non-loopback address with allow_non_loopback', () => {
    const loaded = loadConfigText(
      config('admin:\n  listen: 192.0.2.10:9180\n  allow_non_loopback: true'),
      'gw.yaml',
      '/etc/tollgate',
    );
    expect(loaded.admin).toEqual({ host: '192.0.2.10', port: 9180 });
    expect(loaded.adminAllowNonLoopback).toBe(true);
  });

  it('still rejects with allow_non_loopback: false', () => {
    const errors = errorsOf(
      config('admin:\n  listen: 192.0.2.10:9180\n  allow_non_loopback: false'),
    );
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain('admin.listen');
  });

  it('rejects unknown admin keys and wrong types', () => {
    const errors = errorsOf(
      config('admin:\n  listen: 127.0.0.1:9180\n  token: abc\n  allow_non_loopback: "yes"'),
    );
    expect(errors).toEqual([
      'gw.yaml:8:23 admin.allow_non_loopback: expected boolean, got "yes"',
      'gw.yaml:7:3 admin.token: unknown key "token"',
    ]);
  });
});
