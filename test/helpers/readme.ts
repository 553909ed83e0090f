// The shell blocks of README.md that tests run as written: ```sh fences between
// <!-- readme-test:NAME:start --> and <!-- readme-test:NAME:end --> markers.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../harness/testbed';

export function readmeBlock(name: string): string {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const block = new RegExp(`<!-- readme-test:${name}:start -->\\s*\`\`\`sh\\n([\\s\\S]*?)\`\`\`\\s*<!-- readme-test:${name}:end -->`).exec(readme);
  assert.ok(block?.[1], `README has the ${name} block`);
  return block[1];
}
