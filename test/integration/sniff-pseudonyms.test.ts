// Keyed pseudonyms of patient identifiers in sniff's events: stable for one key, different for
// another, and a bad key file is a usage error that does not print the key.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { EXIT_OK, EXIT_USAGE, runSniff } from '../../src/cli/sniff.js';

const capture = join(import.meta.dirname, '..', 'fixtures', 'dicom', 'store.pcap');
const facts = JSON.parse(
  readFileSync(join(import.meta.dirname, '..', 'fixtures', 'dicom', 'store.json'), 'utf8'),
);
const dir = mkdtempSync(join(tmpdir(), 'tollgate-keys-'));

function keyFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, `${text}\n`);
  return path;
}

async function patientIds(
  keyPath: string,
): Promise<{ status: number; ids: string[]; stderr: string }> {
  const events = join(mkdtempSync(join(dir, 'run-')), 'events.jsonl');
  let stderr = '';
  const errors = new PassThrough();
  errors.on('data', (chunk) => {
    stderr += chunk;
  });
  const status = await runSniff(
    { input: capture, protected: '198.51.100.0/24', events, pseudonymKeyFile: keyPath },
    new PassThrough(),
    errors,
  );
  if (status !== EXIT_OK) return { status, ids: [], stderr };
  const ids = readFileSync(events, 'utf8')
    .split('\n')
    .filter((line) => line.includes('"dicom-association"'))
    .flatMap((line) => JSON.parse(line).tollgate.dicom.patients.ids as string[]);
  return { status, ids: ids.sort(), stderr };
}

describe('sniff pseudonym key file', () => {
  it('gives the same pseudonyms for the same key', async () => {
    const key = keyFile('a.key', 'hex:00112233445566778899aabbccddeeff');
    const first = await patientIds(key);
    const second = await patientIds(key);
    expect(first.status).toBe(EXIT_OK);
    expect(first.ids.length).toBeGreaterThan(0);
    expect(first.ids).toEqual(second.ids);
    for (const id of first.ids) expect(id).toMatch(/^hmac-sha256:[0-9a-f]{32}$/);
  });

  it('gives other pseudonyms for another key', async () => {
    const one = await patientIds(keyFile('one.key', 'first passphrase of the site'));
    const two = await patientIds(keyFile('two.key', 'second passphrase of the site'));
    expect(one.ids).not.toEqual(two.ids);
  });

  it('never writes the clear patient id', async () => {
    const { ids } = await patientIds(keyFile('c.key', 'a passphrase long enough'));
    const clear = facts.instances.map((instance: { patientId: string }) => instance.patientId);
    for (const id of clear) expect(ids).not.toContain(id);
  });

  it('rejects a short key without printing it', async () => {
    const result = await patientIds(keyFile('short.key', 'SECRETKEY'));
    expect(result.status).toBe(EXIT_USAGE);
    expect(result.stderr).toMatch(/below the minimum 16/);
    expect(result.stderr).not.toContain('SECRETKEY');
  });

  it('rejects a missing key file', async () => {
    const result = await patientIds(join(dir, 'absent.key'));
    expect(result.status).toBe(EXIT_USAGE);
    expect(result.stderr).toMatch(/cannot read the pseudonym key file .*ENOENT/);
  });
});
