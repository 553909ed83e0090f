// The version of this VCCR installation (package.json beside bin/ and dist/, in a checkout or a release).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export function vccrVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}
