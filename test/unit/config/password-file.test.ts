// SOCKS5 users with `password_file`: the file is read relative to the config, one trailing line
// end is dropped, and every problem is a config error naming the file, line and key but never
// the password.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ConfigValidationError,
  type GatewayConfig,
  loadConfigText,
  MAX_PASSWORD_FILE_BYTES,
  readPasswordFile,
} from '../../../src/config/load.js';

const dir = mkdtempSync(join(tmpdir(), 'tollgate-password-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function socksConfig(user: string): string {
  return `version: 1
listeners:
  - name: socks
    type: socks5
    listen: 127.0.0.1:1080
    users:
      - ${user}
`;
}

function load(text: string): GatewayConfig {
  return loadConfigText(text, 'gw.yaml', dir);
}

function errorsOf(text: string): string[] {
  try {
    load(text);
  } catch (error) {
    if (error instanceof ConfigValidationError) return error.message.split('\n');
    throw error;
  }
  throw new Error('expected the config to be invalid');
}

function usersOf(config: GatewayConfig) {
  const listener = config.listeners[0];
  if (listener?.type !== 'socks5') throw new Error('expected a socks5 listener');
  return listener.users;
}

describe('SOCKS5 password_file', () => {
  it('reads the password and drops the line end', () => {
    writeFileSync(join(dir, 'lf.password'), 's3cret pass\n');
    writeFileSync(join(dir, 'crlf.password'), 's3cret pass\r\n');
    writeFileSync(join(dir, 'bare.password'), 's3cret pass');
    for (const file of ['lf.password', 'crlf.password', 'bare.password']) {
      const users = usersOf(load(socksConfig(`{ username: vendor, password_file: ${file} }`)));
      expect(users).toEqual([{ username: 'vendor', password: 's3cret pass' }]);
    }
  });

  it('resolves the file against the config folder', () => {
    writeFileSync(join(dir, 'nested.password'), 'nested\n');
    const text = socksConfig('{ username: vendor, password_file: ./nested.password }');
    expect(usersOf(loadConfigText(text, 'gw.yaml', dir))[0]?.password).toBe('nested');
    expect(() => loadConfigText(text, 'gw.yaml', tmpdir())).toThrow(ConfigValidationError);
  });

  it('keeps inline passwords working', () => {
    const users = usersOf(load(socksConfig('{ username: vendor, password: inline }')));
    expect(users).toEqual([{ username: 'vendor', password: 'inline' }]);
  });

  it('reports a missing file at its key', () => {
    const errors = errorsOf(socksConfig('{ username: vendor, password_file: absent.password }'));
    expect(errors).toEqual([
      `gw.yaml:7:44 listeners[0].users[0].password_file: cannot read password file ${join(dir, 'absent.password')}: ENOENT`,
    ]);
  });

  it('rejects empty, multi-line and long files', () => {
    writeFileSync(join(dir, 'empty.password'), '\n');
    writeFileSync(join(dir, 'two.password'), 'first-secret\nsecond-secret\n');
    writeFileSync(join(dir, 'long.password'), `${'p'.repeat(256)}\n`);
    writeFileSync(join(dir, 'huge.password'), 'p'.repeat(MAX_PASSWORD_FILE_BYTES + 1));
    const cases = [
      ['empty.password', 'is empty'],
      ['two.password', 'has more than one line'],
      ['long.password', 'is 256 bytes, more than the maximum 255 (RFC 1929)'],
      ['huge.password', `is ${MAX_PASSWORD_FILE_BYTES + 1} bytes, more than the maximum 1024`],
    ] as const;
    for (const [file, problem] of cases) {
      const errors = errorsOf(socksConfig(`{ username: vendor, password_file: ${file} }`));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toContain('listeners[0].users[0].password_file:');
      expect(errors[0]).toContain(problem);
      expect(errors[0]).not.toContain('secret');
      expect(errors[0]).not.toContain('ppp');
    }
  });

  it('rejects both password and password_file', () => {
    writeFileSync(join(dir, 'both.password'), 'from-file\n');
    const errors = errorsOf(
      socksConfig('{ username: vendor, password: inline-secret, password_file: both.password }'),
    );
    expect(errors).toEqual([
      'gw.yaml:7:69 listeners[0].users[0].password_file: set either password or password_file, not both',
    ]);
  });

  it('rejects a user with neither', () => {
    const errors = errorsOf(socksConfig('{ username: vendor }'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain(
      'listeners[0].users[0].password: missing password; set password or password_file',
    );
  });

  it('leaves a wrongly typed password out of the message', () => {
    const errors = errorsOf(socksConfig('{ username: vendor, password: 987654321 }'));
    expect(errors).toEqual(['gw.yaml:7:39 listeners[0].users[0].password: expected string']);
  });
});

describe('readPasswordFile', () => {
  it('returns the password or a problem', () => {
    writeFileSync(join(dir, 'direct.password'), 'direct\n');
    expect(readPasswordFile(join(dir, 'direct.password'))).toBe('direct');
    expect(readPasswordFile(dir)).toEqual({
      problem: `password file ${dir} is not a regular file`,
    });
  });
});
