// `tollgate run` start-up errors: a bad --pseudonym-key-file or a relay the gateway would refuse
// stop it with exit status 2 and a message naming the file, before anything listens.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { runGateway } from '../../../src/cli/run.js';
import { EXIT_USAGE } from '../../../src/cli/sniff.js';
import {
  handleProcessWarning,
  logProcessWarnings,
  RANDOM_PSEUDONYM_KEY_WARNING,
  writeProcessWarningsAsText,
} from '../../../src/cli/warnings.js';

const dir = mkdtempSync(join(tmpdir(), 'tollgate-run-'));

function writeConfig(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

async function startErrors(
  options: Parameters<typeof runGateway>[0],
): Promise<{ status: number; stderr: string }> {
  let stderr = '';
  const errors = new PassThrough();
  errors.on('data', (chunk) => {
    stderr += chunk;
  });
  const status = await runGateway(options, errors);
  return { status, stderr };
}

// Port 9 (discard) is never bound: every case fails before the listeners start.
const PROXY_ONLY = `version: 1
listeners: [{ name: web, type: http-proxy, listen: "127.0.0.1:9" }]
`;

afterEach(() => writeProcessWarningsAsText());

describe('run --pseudonym-key-file', () => {
  it('rejects a missing file, naming it', async () => {
    const config = writeConfig('proxy.yaml', PROXY_ONLY);
    const keyFile = join(dir, 'absent.key');
    const result = await startErrors({ config, pseudonymKeyFile: keyFile });
    expect(result.status).toBe(EXIT_USAGE);
    expect(result.stderr).toBe(
      `tollgate run: cannot read the pseudonym key file ${keyFile}: ENOENT\n`,
    );
  });

  it('rejects a short key with the minimum, not the key', async () => {
    const config = writeConfig('proxy.yaml', PROXY_ONLY);
    const keyFile = join(dir, 'short.key');
    writeFileSync(keyFile, 'SECRETKEY\n');
    const result = await startErrors({ config, pseudonymKeyFile: keyFile });
    expect(result.status).toBe(EXIT_USAGE);
    expect(result.stderr).toBe(
      `tollgate run: invalid key in pseudonym key file ${keyFile}: pseudonym key length 9 bytes is below the minimum 16\n`,
    );
  });
});

describe('run with an unreachable relay upstream', () => {
  it('exits 2 naming the listener and the upstream', async () => {
    const config = writeConfig(
      'relay.yaml',
      `version: 1
listeners:
  - { name: metadata, type: relay, listen: "127.0.0.1:9", upstream: "169.254.169.254:80" }
`,
    );
    const result = await startErrors({ config });
    expect(result.status).toBe(EXIT_USAGE);
    expect(result.stderr).toBe(
      `tollgate run: ${config}:3:69 listeners[0].upstream: relay "metadata" upstream 169.254.169.254:80 is in the denied range 169.254.0.0/16 (built in, link-local and cloud metadata), so the gateway would refuse every connection through this relay\n`,
    );
  });
});

describe('process warnings in run', () => {
  function capture(): { log: pino.Logger; lines: () => Array<Record<string, unknown>> } {
    let text = '';
    const stream = new PassThrough();
    stream.on('data', (chunk) => {
      text += chunk;
    });
    const log = pino({ name: 'tollgate' }, stream);
    const lines = () =>
      text
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    return { log, lines };
  }

  it('become pino warn lines', async () => {
    const { log, lines } = capture();
    logProcessWarnings(log);
    const warning = Object.assign(new Error('something to look at'), { code: 'SOME_CODE' });
    handleProcessWarning(warning);
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines()).toHaveLength(1);
    expect(lines()[0]).toMatchObject({ level: 40, code: 'SOME_CODE', msg: 'something to look at' });
  });

  it('skip the random key warning, which startGateway logs itself', async () => {
    const { log, lines } = capture();
    logProcessWarnings(log);
    const warning = Object.assign(new Error('no pseudonym key configured'), {
      code: RANDOM_PSEUDONYM_KEY_WARNING,
    });
    handleProcessWarning(warning);
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines()).toEqual([]);
  });
});
