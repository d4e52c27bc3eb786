// The CLI under a reader that closes the pipe early, as `tollgate sniff --help | head -1` does.

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { expect, it } from 'vitest';

const cli = join(process.cwd(), 'dist', 'cli', 'main.js');

it('exits quietly when stdout closes early', async () => {
  // The bundled sample's events go to standard output, far more than a pipe buffer holds.
  const child = spawn(process.execPath, [cli, 'sniff'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.stdout.once('data', () => child.stdout.destroy());

  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));

  expect(code).toBe(141);
  expect(stderr).not.toContain('EPIPE');
  expect(stderr).not.toContain('Unhandled');
}, 30_000);
