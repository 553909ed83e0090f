// The replay test (test/replay.test.ts) can fail: the recorded checkpoint histories are replayed against
// workflow code changed on purpose (an extra activity call at the start of checkpointCluster) and must
// fail with Temporal's non-determinism error; the same change behind patched() must replay cleanly.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { DefaultLogger, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { installQuietRuntime, loadHistories } from './helpers/histories';

const checkpoints = loadHistories().filter((h) => h.workflowType === 'checkpointCluster');

before(installQuietRuntime);

async function replayAgainst(variant: string): Promise<Array<{ name: string; error: Error | undefined }>> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: require.resolve(`./helpers/changed-workflows/${variant}`),
    logger: new DefaultLogger('ERROR'),
  });
  const results: Array<{ name: string; error: Error | undefined }> = [];
  for await (const r of Worker.runReplayHistories({ workflowBundle: { code } }, checkpoints.map((h) => ({ workflowId: h.name, history: h.history })))) {
    results.push({ name: r.workflowId, error: r.error });
  }
  return results;
}

test('there are recorded checkpoint histories to replay', () => {
  assert.ok(checkpoints.length >= 2, `checkpoint histories in test/histories/: ${checkpoints.map((h) => h.name).join(', ')}`);
});

test('an extra activity call breaks the replay of every recorded checkpoint', { timeout: 180_000 }, async (t) => {
  const results = await replayAgainst('extra-activity');
  assert.equal(results.length, checkpoints.length);
  for (const { name, error } of results) {
    if (!(error instanceof DeterminismViolationError)) {
      assert.fail(`${name}: expected a DeterminismViolationError, got ${error ? `${error.name}: ${error.message}` : 'a clean replay'}`);
    }
    assert.match(error.message, /nondeterminism/i);
    t.diagnostic(`${name}: ${/\[TMPRL1100\][^"]*/.exec(error.message)?.[0] ?? error.message.slice(0, 300)}`);
  }
});

test('the same change behind patched() replays every recorded checkpoint', { timeout: 180_000 }, async () => {
  const results = await replayAgainst('patched-extra-activity');
  assert.deepEqual(
    results.map((r) => [r.name, r.error?.message]),
    checkpoints.map((h) => [h.name, undefined]),
  );
});
