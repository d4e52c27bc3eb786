// Config errors show the value that is wrong, so the user can find it without opening the file.

import { describe, expect, it } from 'vitest';
import { ConfigValidationError, loadConfigText } from '../../../src/config/load.js';

function errorsOf(text: string): string[] {
  try {
    loadConfigText(text, 'gw.yaml', '/etc/tollgate');
  } catch (error) {
    if (error instanceof ConfigValidationError) return error.message.split('\n');
    throw error;
  }
  throw new Error('expected the config to be invalid');
}

const LISTENER = '[{ name: web, type: http-proxy, listen: "127.0.0.1:3128" }]';

describe('config error messages', () => {
  it.each(['', '# nothing yet\n', 'null\n', '---\n'])('empty file %j', (text) => {
    const errors = errorsOf(text);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(
      /^gw\.yaml:1:\d+ the config is empty; expected a mapping with "version: 1" and "listeners"$/,
    );
  });

  it('top level that is not a mapping', () => {
    expect(errorsOf('- version: 1\n')).toEqual([
      'gw.yaml:1:1 expected a mapping with "version: 1" and "listeners", got [{"version":1}]',
    ]);
  });

  it('unsupported version shows it', () => {
    expect(errorsOf(`version: "1"\nlisteners: ${LISTENER}\n`)).toEqual([
      'gw.yaml:1:10 version: unsupported config version "1"; this tollgate reads version 1',
    ]);
  });

  it('invalid listener name shows it', () => {
    const errors = errorsOf(
      'version: 1\nlisteners: [{ name: Web Proxy, type: http-proxy, listen: "127.0.0.1:3128" }]\n',
    );
    expect(errors).toEqual([
      'gw.yaml:2:21 listeners[0].name: invalid listener name "Web Proxy"; use a-z, 0-9, "-" and "_", starting with a letter or digit',
    ]);
  });

  it('counts below 1 and fractions show the value', () => {
    const errors = errorsOf(
      `version: 1\nlisteners: ${LISTENER}\nlimits:\n  max_connections: -1\n  max_connections_per_source: 1.5\n`,
    );
    expect(errors).toEqual([
      'gw.yaml:4:20 limits.max_connections: expected at least 1, got -1',
      'gw.yaml:5:31 limits.max_connections_per_source: expected a whole number, got 1.5',
    ]);
  });

  it('empty file paths say so', () => {
    const errors = errorsOf(
      `version: 1\npolicy: ""\nevents: ""\npseudonym_key_file: ""\nlisteners: ${LISTENER}\n`,
    );
    expect(errors).toEqual([
      'gw.yaml:2:9 policy: must not be empty',
      'gw.yaml:3:9 events: must not be empty',
      'gw.yaml:4:21 pseudonym_key_file: must not be empty',
    ]);
  });
});
