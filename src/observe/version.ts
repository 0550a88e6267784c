import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** Cicada's version from its package.json ('unknown' if it cannot be read). */
export function cicadaVersion(): string {
  if (cached !== undefined) return cached;
  try {
    // dist/src/observe/version.js -> package.json at the package root.
    const pkg: unknown = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'));
    const version = typeof pkg === 'object' && pkg !== null ? Reflect.get(pkg, 'version') : undefined;
    cached = typeof version === 'string' ? version : 'unknown';
  } catch {
    cached = 'unknown';
  }
  return cached;
}
