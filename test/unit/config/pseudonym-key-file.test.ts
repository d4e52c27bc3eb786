// pseudonym_key_file in the gateway config: read once at load, relative to the config file,
// problems reported with the line and the file name, and the key never shown.

import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  MAX_PSEUDONYM_KEY_FILE_BYTES,
  readPseudonymKeyFile,
} from '../../../src/config/key-file.js';
import { ConfigValidationError, loadConfigFile } from '../../../src/config/load.js';

const dir = mkdtempSync(join(tmpdir(), 'tollgate-key-'));
const KEY_TEXT = 'a site passphrase of the tollgate';

function configWithKey(keyPath: string): string {
  const path = join(dir, `gw-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    path,
    `version: 1
pseudonym_key_file: ${keyPath}
listeners: [{ name: web, type: http-proxy, listen: "127.0.0.1:3128" }]
`,
  );
  return path;
}

function errorsOf(configPath: string): string {
  try {
    loadConfigFile(configPath);
  } catch (error) {
    if (error instanceof ConfigValidationError) return error.message;
    throw error;
  }
  throw new Error('expected the config to be invalid');
}

describe('pseudonym_key_file', () => {
  it('reads the key relative to the config file', () => {
    mkdirSync(join(dir, 'keys'), { recursive: true });
    writeFileSync(join(dir, 'keys', 'site.key'), `${KEY_TEXT}\n`);
    const config = loadConfigFile(configWithKey('keys/site.key'));
    expect(config.pseudonymKey?.file).toBe(join(dir, 'keys', 'site.key'));
    expect(config.pseudonymKey?.key.toString('utf8')).toBe(KEY_TEXT);
  });

  it('is null when the key is not set', () => {
    const path = join(dir, 'no-key.yaml');
    writeFileSync(
      path,
      'version: 1\nlisteners: [{ name: web, type: http-proxy, listen: "127.0.0.1:3128" }]\n',
    );
    expect(loadConfigFile(path).pseudonymKey).toBeNull();
  });

  it('never shows the key when the config is logged', () => {
    writeFileSync(join(dir, 'shown.key'), KEY_TEXT);
    const config = loadConfigFile(configWithKey('shown.key'));
    expect(JSON.stringify(config)).not.toContain(KEY_TEXT);
    expect(JSON.stringify(config)).toContain(join(dir, 'shown.key'));
    expect(inspect(config, { depth: 10 })).not.toContain(KEY_TEXT);
    expect(inspect(config, { depth: 10 })).not.toContain('<Buffer');
  });

  it('reports a missing file with line and path', () => {
    const config = configWithKey('absent.key');
    expect(errorsOf(config)).toBe(
      `${config}:2:21 pseudonym_key_file: cannot read the pseudonym key file ${join(dir, 'absent.key')}: ENOENT`,
    );
  });

  it('reports a short key with the minimum, not the key', () => {
    writeFileSync(join(dir, 'short.key'), 'SECRETKEY\n');
    const config = configWithKey('short.key');
    const message = errorsOf(config);
    expect(message).toBe(
      `${config}:2:21 pseudonym_key_file: invalid key in pseudonym key file ${join(dir, 'short.key')}: pseudonym key length 9 bytes is below the minimum 16`,
    );
    expect(message).not.toContain('SECRETKEY');
  });

  it('reports an empty file', () => {
    writeFileSync(join(dir, 'empty.key'), '\n');
    expect(errorsOf(configWithKey('empty.key'))).toContain(
      `pseudonym key file ${join(dir, 'empty.key')} is empty; write a key of at least 16 bytes`,
    );
  });

  it('reports a file over the size limit', () => {
    writeFileSync(join(dir, 'big.key'), 'k'.repeat(MAX_PSEUDONYM_KEY_FILE_BYTES + 1));
    expect(errorsOf(configWithKey('big.key'))).toContain(
      `pseudonym key file ${join(dir, 'big.key')} is ${MAX_PSEUDONYM_KEY_FILE_BYTES + 1} bytes, more than the maximum ${MAX_PSEUDONYM_KEY_FILE_BYTES}`,
    );
  });

  it('reports a folder', () => {
    expect(errorsOf(configWithKey('keys'))).toContain(
      `pseudonym key file ${join(dir, 'keys')} is not a regular file`,
    );
  });
});

describe('readPseudonymKeyFile', () => {
  it.each([
    ['hex', 'hex:00112233445566778899aabbccddeeff', '00112233445566778899aabbccddeeff'],
    ['base64', 'base64:ABEiM0RVZneImaq7zN3u/w==', '00112233445566778899aabbccddeeff'],
    ['a passphrase', `  ${KEY_TEXT} \r\n`, Buffer.from(KEY_TEXT).toString('hex')],
  ])('reads %s', (_kind, text, keyHex) => {
    const path = join(dir, 'format.key');
    writeFileSync(path, text);
    const key = readPseudonymKeyFile(path);
    if ('problem' in key) throw new Error(key.problem);
    expect(key.key.toString('hex')).toBe(keyHex);
  });
});
