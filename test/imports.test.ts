// The boundaries a folder promises, checked on the import graph of the sources (test/helpers/import-graph.ts):
// workflow code — workflows/ and the pure common/ it may use — imports nothing Node-only, so the workflow
// bundle cannot pull in Node by accident; the pause guard is used only through its entry point; and no
// two product modules import each other. Each check is also run on a small fixture it must reject.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { boundaryViolations, describeViolation, importCycles, runtimeImports, sourceFiles, type Boundary } from './helpers/import-graph';

const ROOT = join(__dirname, '..', '..');

/** What deterministic workflow code may reach: workflows/, the pure common/, and these packages. */
function workflowBoundary(root: string): Boundary {
  return {
    root,
    mayReach: (path) => path.startsWith('workflows/') || path.startsWith('common/'),
    packages: new Set(['@temporalio/workflow', '@temporalio/common', 'zod']),
  };
}

function workflowEntries(root: string): string[] {
  return [...sourceFiles(join(root, 'workflows')), ...sourceFiles(join(root, 'common'))];
}

/** Writes `files` (path → source) under a new temporary folder; returns it. */
function fixture(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'vccr-imports-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

test('workflow code (workflows/, common/) imports nothing Node-only', () => {
  const entries = workflowEntries(ROOT);
  assert.ok(entries.length > 30, `found the sources (${entries.length} files)`);
  assert.deepEqual(boundaryViolations(entries, workflowBoundary(ROOT)).map(describeViolation), []);
});

test('the workflow check rejects Node modules, Node-only packages and folders, however deep', () => {
  const dir = fixture({
    'workflows/ok.ts': "import type { Logger } from '../node/logger';\nimport { pure } from '../common/pure';\nexport const x: Logger | number = pure;\n",
    'common/pure.ts': "import { z } from 'zod';\nimport { step } from './deeper';\nexport const pure = step + (z ? 1 : 0);\n",
    'common/deeper.ts': "import { join } from 'node:path';\nexport const step = join('a').length;\n",
    'workflows/logs.ts': "import { childLogger } from '../node/logger';\nexport const log = childLogger('x');\n",
    'workflows/pkg.ts': "import pino from 'pino';\nexport const p = pino;\n",
    'workflows/fs.ts': "// eslint-disable-next-line\nconst fs = require('fs');\nexport const f = fs;\n",
    'workflows/types-only.ts': "import { type ChildProcess } from 'node:child_process';\nexport type { Stats } from 'node:fs';\nexport type C = ChildProcess;\n",
    'node/logger.ts': "import pino from 'pino';\nexport type Logger = ReturnType<typeof pino>;\nexport const childLogger = (n: string) => pino({ name: n });\n",
  });
  try {
    const found = boundaryViolations(workflowEntries(dir), workflowBoundary(dir)).map(describeViolation).sort();
    assert.deepEqual(found, [
      "common/deeper.ts:1 imports 'node:path' (a Node.js module)",
      "workflows/fs.ts:2 imports 'fs' (a Node.js module)",
      "workflows/logs.ts:1 imports '../node/logger' (node/logger.ts is outside the folders this code may import)",
      "workflows/pkg.ts:1 imports 'pino' (package pino is not one this code may use)",
    ]);
    // Followed from one workflow, the message shows how the import is reached.
    assert.deepEqual(boundaryViolations([join(dir, 'workflows/ok.ts')], workflowBoundary(dir)).map(describeViolation), [
      "workflows/ok.ts → common/pure.ts → common/deeper.ts:1 imports 'node:path' (a Node.js module)",
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the pause guard is one unit: code outside it imports only its index.ts', () => {
  const unit = 'activities/host/pause-guard/';
  const outside = ['activities', 'workers', 'client', 'common', 'node', 'workflows', 'harness', 'scripts', 'bench', 'test']
    .flatMap((d) => sourceFiles(join(ROOT, d)))
    .filter((f) => !relative(ROOT, f).startsWith(unit));
  const wrong = outside.flatMap((f) =>
    runtimeImports(f)
      .filter((e) => e.file && relative(ROOT, e.file).startsWith(unit) && relative(ROOT, e.file) !== `${unit}index.ts`)
      .map((e) => `${relative(ROOT, f)}:${e.line} imports ${e.specifier}`),
  );
  assert.deepEqual(wrong, []);
});

test('no import cycles between product modules (type imports included)', () => {
  const product = ['activities', 'workflows', 'workers', 'client', 'common', 'node'].flatMap((d) => sourceFiles(join(ROOT, d)));
  assert.deepEqual(importCycles(product, ROOT), []);
});

test('the cycle check finds a cycle through a type import', () => {
  const dir = fixture({
    'a.ts': "import { b } from './b';\nexport const a = b + 1;\nexport interface A { n: number }\n",
    'b.ts': "import type { A } from './a';\nexport const b: A['n'] = 1;\n",
    'c.ts': "import { a } from './a';\nexport const c = a;\n",
  });
  try {
    assert.deepEqual(importCycles(sourceFiles(dir), dir), [['a.ts', 'b.ts']]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
