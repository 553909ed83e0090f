// Fault cases of live checkpoints (mode 'live'), on the fault bed's cluster. In every case the cluster must
// run on without losing anything — above all no guest may freeze: on QEMU 7.2 a background snapshot whose
// stream breaks leaves the guest frozen for good, which is why the stream is received by a detached writer
// process and every failure drains it instead of cutting it. Each checkpoint either commits and restores
// exactly, or fails cleanly (failure recorded, no partial file left).
//   - the controller killed in each live phase (at its start or inside it) and started again;
//   - host b's worker killed during the background write and started again (the retried step joins the
//     detached writer);
//   - a QEMU killed during the background write (clear failure, the others run on; the cluster is then
//     brought back from a good checkpoint).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { TestBed } from '../../harness/testbed';
import { sleep, terminate } from '../../node/proc';
import { assertClusterHealthy, assertStoreClean, CLUSTER, HOME, PAUSE_BOUND_S, PauseMonitor, random, report, restoreAndVerify, RUNS } from './fault-bed';
import { startFaultBed } from './fault-bed';
import { outcomeOf, waitForPhase } from './waits';

/** The phases of a live checkpoint, in order, as the `progress` query names them. */
const LIVE_PHASES = ['prepare', 'capture', 'write', 'commit'];
const TYPICAL_MS: Record<string, number> = { prepare: 150, capture: 300, write: 3000, commit: 60 };

let bed: TestBed;
before(async () => (bed = await startFaultBed({ testHooks: true })));
after(() => bed?.stop());

async function startLive(id: string): Promise<string> {
  const started = await bed.vccr.checkpoint(CLUSTER, { checkpointId: id, live: true, noWait: true });
  assert.ok('workflowId' in started, 'the checkpoint was started, not awaited');
  return started.workflowId;
}

/** Committed: it restores exactly. Failed: recorded, nothing partial left. Either way every VM runs on. */
async function assertOutcome(id: string, outcome: string): Promise<void> {
  await Promise.all([assertClusterHealthy(bed), assertStoreClean(bed, outcome === 'completed' ? [id] : [])]);
  if (outcome === 'completed') await restoreAndVerify(bed, id);
  else assert.ok(existsSync(join(bed.store, CLUSTER, '_failed', `${id}.json`)), 'the failure is recorded');
}

describe('live checkpoint: controller worker killed', () => {
  for (const phase of LIVE_PHASES) {
    test(`in ${phase}`, { timeout: RUNS * 150_000 }, async (t) => {
      for (let run = 1; run <= RUNS; run++) {
        const inside = run % 2 === 0;
        const started = Date.now();
        const monitor = new PauseMonitor(bed, () => HOME);
        const id = `lc-${phase}-${run}-${Date.now().toString(36)}`;
        const workflowId = await startLive(id);
        const seen = await waitForPhase(bed, workflowId, LIVE_PHASES, phase);
        if (inside) await sleep(random(0, TYPICAL_MS[phase] ?? 100));
        const controller = bed.controllers.at(-1);
        assert.ok(controller);
        await controller.kill();
        await sleep(random(0, 1500));
        await bed.startController();
        const outcome = await outcomeOf(bed, workflowId);
        const maxPausedMs = await monitor.stop();
        assert.ok(maxPausedMs < PAUSE_BOUND_S * 1000, `paused ${maxPausedMs} ms`);
        await assertOutcome(id, outcome);
        t.diagnostic(`run ${run}: killed in ${seen}${inside ? ' (inside)' : ''}: ${outcome.slice(0, 200)}; longest pause seen ${maxPausedMs} ms`);
        report({ suite: 'live', case: `controller killed in ${phase}`, run, outcome: outcome.split(':')[0] ?? '', maxPausedMs, ms: Date.now() - started, detail: outcome, ok: true });
      }
    });
  }
});

test('live checkpoint: host worker killed during the background write and started again', { timeout: RUNS * 150_000 }, async (t) => {
  for (let run = 1; run <= RUNS; run++) {
    const started = Date.now();
    const monitor = new PauseMonitor(bed, () => HOME);
    const id = `lh-${run}-${Date.now().toString(36)}`;
    const workflowId = await startLive(id);
    await waitForPhase(bed, workflowId, LIVE_PHASES, 'write');
    await sleep(random(0, 1000));
    await bed.hostWorkers.get('b')?.kill();
    await sleep(random(0, 2000));
    await bed.startHost('b');
    const outcome = await outcomeOf(bed, workflowId);
    const maxPausedMs = await monitor.stop();
    await assertOutcome(id, outcome);
    t.diagnostic(`run ${run}: ${outcome.slice(0, 200)}; longest pause seen ${maxPausedMs} ms`);
    report({ suite: 'live', case: 'host worker killed during the write, restarted', run, outcome: outcome.split(':')[0] ?? '', maxPausedMs, ms: Date.now() - started, detail: outcome, ok: true });
  }
});

test('live checkpoint: a QEMU killed during the background write fails it clearly; the others run on', { timeout: RUNS * 200_000 }, async (t) => {
  const good = await bed.vccr.checkpoint(CLUSTER, { checkpointId: `lq-good-${Date.now().toString(36)}` });
  assert.ok('downtimeMs' in good);
  for (let run = 1; run <= RUNS; run++) {
    const started = Date.now();
    const victim = run % 2 ? 'heavy' : 'vm1';
    const id = `lq-${run}-${Date.now().toString(36)}`;
    const workflowId = await startLive(id);
    await waitForPhase(bed, workflowId, LIVE_PHASES, 'write');
    await sleep(random(0, 300));
    const record = bed.vmRecord(HOME[victim] ?? '', CLUSTER, victim);
    await terminate({ pid: record.pid, startTime: record.startTime }, 'SIGKILL');
    const outcome = await outcomeOf(bed, workflowId);
    // The victim's write may have finished just before it died: then the checkpoint is good.
    if (outcome !== 'completed') {
      assert.match(outcome, /failed in write/);
      assert.ok(existsSync(join(bed.store, CLUSTER, '_failed', `${id}.json`)), 'the failure is recorded');
    }
    await assertStoreClean(bed, outcome === 'completed' ? [id] : []);
    // The cluster is whole again from the last good checkpoint (or this one), and carries on exactly.
    const from = outcome === 'completed' ? id : good.checkpointId;
    await restoreAndVerify(bed, from);
    await assertClusterHealthy(bed);
    t.diagnostic(`run ${run}: ${victim} killed: ${outcome.slice(0, 200)}`);
    report({ suite: 'live', case: 'QEMU killed during the write', run, outcome: outcome.split(':')[0] ?? '', maxPausedMs: 0, ms: Date.now() - started, detail: outcome, ok: true });
  }
});
