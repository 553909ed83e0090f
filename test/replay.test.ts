// Safe upgrades: every history in test/histories/ — recorded from real runs by `npm run histories:record` —
// is replayed against today's workflow code (the bundle the controller worker runs). A change to a
// workflow that would break a running execution of it fails here with the non-determinism error.
// test/replay-changed.test.ts shows this test can fail.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from '@temporalio/worker';
import * as workflows from '../workflows';
import { WORKFLOW_BUNDLE, installQuietRuntime, loadHistories } from './helpers/histories';

const histories = loadHistories();
const results = new Map<string, { error?: Error; ms: number }>();
let totalMs = 0;

before(async () => {
  installQuietRuntime();
  const started = Date.now();
  let last = started;
  const replays = Worker.runReplayHistories(
    { workflowBundle: { codePath: WORKFLOW_BUNDLE } },
    histories.map((h) => ({ workflowId: h.name, history: h.history })),
  );
  for await (const result of replays) {
    const now = Date.now();
    results.set(result.workflowId, { ...(result.error ? { error: result.error } : {}), ms: now - last });
    last = now;
  }
  totalMs = Date.now() - started;
});

test('test/histories/ holds a history of every workflow type', (t) => {
  t.diagnostic(`${histories.length} histories replayed in ${totalMs} ms`);
  const recorded = new Set(histories.map((h) => h.workflowType));
  const types = Object.keys(workflows).filter((k) => typeof (workflows as Record<string, unknown>)[k] === 'function');
  assert.deepEqual(types.filter((t) => !recorded.has(t)), [], 'workflow types without a recorded history: run `npm run histories:record`');
});

for (const { name, workflowType } of histories) {
  test(`${name} (${workflowType}) replays against today's workflow code`, (t) => {
    const result = results.get(name);
    assert.ok(result, `${name} was not replayed`);
    t.diagnostic(`${result.ms} ms`);
    if (result.error) assert.fail(`${name}: ${result.error.name}: ${result.error.message}`);
  });
}
