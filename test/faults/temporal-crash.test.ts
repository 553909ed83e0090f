// Fault case 4: the Temporal server itself is killed in the middle of a checkpoint and started again on
// the same SQLite file after a few seconds. Workers reconnect, the workflow resumes, the operation completes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestBed } from '../../harness/testbed';
import { sleep } from '../../node/proc';
import { assertClusterHealthy, assertStoreClean, CHECKPOINT_PHASES, HOME, PAUSE_BOUND_S, PauseMonitor, random, report, restoreAndVerify, RUNS, startCheckpoint, startFaultBed } from './fault-bed';
import { outcomeOf, waitForPhase } from './waits';

let bed: TestBed;
before(async () => (bed = await startFaultBed()));
after(() => bed?.stop());

test('the Temporal server killed mid-checkpoint and restarted: the checkpoint completes', { timeout: RUNS * 150_000 }, async (t) => {
  for (let run = 1; run <= RUNS; run++) {
    const started = Date.now();
    const monitor = new PauseMonitor(bed, () => HOME);
    const id = `tc-${run}-${Date.now().toString(36)}`;
    const workflowId = await startCheckpoint(bed, id);
    const phase = CHECKPOINT_PHASES[run % 4] ?? 'save';
    const seen = await waitForPhase(bed, workflowId, CHECKPOINT_PHASES, phase);
    await sleep(random(0, 300));
    await bed.server.kill();
    const downMs = random(1000, 3000);
    await sleep(downMs);
    await bed.server.launch();
    const outcome = await outcomeOf(bed, workflowId);
    const maxPausedMs = await monitor.stop();
    assert.equal(outcome, 'completed', 'the checkpoint completes after the server is back');
    await Promise.all([assertClusterHealthy(bed), assertStoreClean(bed, [id])]);
    assert.ok(maxPausedMs < PAUSE_BOUND_S * 1000, `paused ${maxPausedMs} ms`);
    await restoreAndVerify(bed, id);
    t.diagnostic(`run ${run}: server killed in ${seen}, down ${downMs} ms → ${outcome}; longest pause ${maxPausedMs} ms`);
    report({ suite: 'temporal-crash', case: 'server killed mid-checkpoint', run, outcome, maxPausedMs, ms: Date.now() - started, detail: `killed in ${seen}, down ${downMs} ms`, ok: true });
  }
});
