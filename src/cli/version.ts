import { readFileSync } from 'node:fs';

const packageJson = JSON.parse(
  readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
) as { version: string };

/** The package version, read from package.json in src/ and dist/ alike. */
export const VERSION: string = packageJson.version;
