// ARCHITECTURE.md's code map lists every source file: a file added, moved or removed without the map
// following fails here, naming it. Each file must appear (as `name`, relative to the row's folder) in the
// row of the deepest folder that holds it. Test suites (*.test.ts) are covered by the `test/` row as a whole.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { sourceFiles } from './helpers/import-graph';

const ROOT = join(__dirname, '..', '..');
const MAPPED = ['activities', 'workflows', 'workers', 'client', 'common', 'node', 'harness', 'bench', 'test'];

/** Folder → the text of its row, from the code map table. */
function codeMapRows(markdown: string): Map<string, string> {
  const section = markdown.slice(markdown.indexOf('## Code map'));
  const rows = new Map<string, string>();
  for (const line of section.split('\n')) {
    const m = /^\| `([^`]+)\/` \| (.*) \|$/.exec(line);
    if (m?.[1] && m[2]) rows.set(m[1], m[2]);
  }
  return rows;
}

function filesToMap(): string[] {
  const ts = MAPPED.flatMap((d) => sourceFiles(join(ROOT, d))).map((f) => relative(ROOT, f));
  const scripts = readdirSync(join(ROOT, 'scripts')).filter((n) => /\.(ts|sh)$/.test(n)).map((n) => `scripts/${n}`);
  return [...ts, ...scripts].filter((f) => !f.endsWith('.test.ts'));
}

/** Files the map does not name where it should. */
function unmapped(files: string[], rows: Map<string, string>): string[] {
  return files.filter((file) => {
    const folder = [...rows.keys()].filter((f) => file.startsWith(`${f}/`)).sort((a, b) => b.length - a.length)[0];
    return folder === undefined || !(rows.get(folder) ?? '').includes(`\`${file.slice(folder.length + 1)}\``);
  });
}

test('ARCHITECTURE.md names every source file in its code map', () => {
  const rows = codeMapRows(readFileSync(join(ROOT, 'ARCHITECTURE.md'), 'utf8'));
  const files = filesToMap();
  assert.ok(files.length > 150, `found the sources (${files.length})`);
  assert.deepEqual(unmapped(files, rows), []);
});

test('the code-map check finds a file the map does not name', () => {
  const rows = new Map([['workflows', '`checkpoint.ts`, `barriers.ts`'], ['activities/host', '`index.ts`']]);
  assert.deepEqual(unmapped(['workflows/checkpoint.ts', 'workflows/new.ts', 'activities/host/index.ts', 'activities/host/pause-guard/index.ts', 'elsewhere/x.ts'], rows), [
    'workflows/new.ts',
    'activities/host/pause-guard/index.ts',
    'elsewhere/x.ts',
  ]);
});
