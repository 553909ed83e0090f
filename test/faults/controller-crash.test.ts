// Fault case 1: the controller worker is SIGKILLed at every phase of a checkpoint and of a restart — at
// the phase boundary or at a random moment inside it — and started again after a random delay. The
// workflow must finish the protocol: the checkpoint is committed and verifies, or failed cleanly and left
// nothing; the cluster runs on without losing anything; no VM stays paused past the bound.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestBed } from '../../harness/testbed';
import { sleep } from '../../node/proc';
import { progressQuery } from '../../common/messages';
import { toVccrError } from '../../client/errors';
import { assertRingContinued } from '../helpers/ring-check';
import { assertClusterHealthy, assertStoreClean, CHECKPOINT_PHASES, CLUSTER, HOME, PAUSE_BOUND_S, PauseMonitor, random, report, RESTART_PHASES, restoreAndVerify, RING, RUNS, startCheckpoint, startFaultBed } from './fault-bed';

let bed: TestBed;
before(async () => (bed = await startFaultBed()));
after(() => bed?.stop());

/** Typical phase lengths here, for picking a moment inside a phase. */
const TYPICAL_MS: Record<string, number> = { prepare: 150, capture: 200, save: 1500, commit: 60, validate: 800, 'stop-old': 100, launch: 400, load: 1500 };

/** When the last crash was injected and the new controller was up (for the run's timeline). */
const timings = { killedAt: 0, readyAt: 0 };

/** Waits until the workflow reaches `phase` (or a later one), optionally a bit longer, then crashes the controller. */
async function crashControllerAt(workflowId: string, phases: string[], phase: string, inside: boolean): Promise<string> {
  const handle = (await bed.temporal()).workflow.getHandle(workflowId);
  const target = phases.indexOf(phase);
  let seen = 'starting';
  for (let i = 0; i < 3000; i++) {
    const p = await handle.query(progressQuery).catch(() => undefined);
    if (p) seen = p.phase;
    const at = phases.indexOf(seen);
    if (at >= target || seen === 'done' || seen === 'abort') break;
    await sleep(5);
  }
  if (inside) await sleep(random(0, TYPICAL_MS[phase] ?? 100));
  const controller = bed.controllers.at(-1);
  assert.ok(controller);
  const killedAt = Date.now();
  await controller.kill();
  await sleep(random(0, 1500));
  await bed.startController();
  timings.killedAt = killedAt;
  timings.readyAt = Date.now();
  return seen;
}

describe('controller worker killed during a checkpoint', () => {
  for (const phase of CHECKPOINT_PHASES) {
    test(`in ${phase}`, { timeout: RUNS * 120_000 }, async (t) => {
      for (let run = 1; run <= RUNS; run++) {
        const inside = run % 2 === 0;
        const started = Date.now();
        const monitor = new PauseMonitor(bed, () => HOME);
        const id = `c-${phase}-${run}-${Date.now().toString(36)}`;
        const workflowId = await startCheckpoint(bed, id);
        const seen = await crashControllerAt(workflowId, CHECKPOINT_PHASES, phase, inside);
        let outcome: string;
        try {
          await (await bed.temporal()).workflow.getHandle(workflowId).result();
          outcome = 'committed';
        } catch (err) {
          outcome = `failed cleanly: ${toVccrError(err).message}`;
        }
        const doneAt = Date.now();
        const maxPausedMs = await monitor.stop();
        await Promise.all([assertClusterHealthy(bed), assertStoreClean(bed, outcome === 'committed' ? [id] : [])]);
        assert.ok(maxPausedMs < PAUSE_BOUND_S * 1000, `paused ${maxPausedMs} ms`);
        // Committed under a fault: it must restore, and the cluster continue exactly from it.
        if (outcome === 'committed') await restoreAndVerify(bed, id);
        const detail = `killed ${inside ? 'inside' : 'at the start of'} ${phase} (workflow was in ${seen})`;
        t.diagnostic(`run ${run}: ${detail} → ${outcome}; longest pause ${maxPausedMs} ms`);
        t.diagnostic(`run ${run}: timeline (ms from start): killed ${timings.killedAt - started}, controller back ${timings.readyAt - started}, workflow ended ${doneAt - started}, checks done ${Date.now() - started}`);
        report({ suite: 'controller-crash', case: `checkpoint/${phase}`, run, outcome: outcome.split(':')[0] ?? outcome, maxPausedMs, ms: Date.now() - started, detail, ok: true });
      }
    });
  }
});

describe('controller worker killed during a restart', () => {
  let latest = '';
  before(async () => {
    const r = await bed.vccr.checkpoint(CLUSTER, { checkpointId: `base-${Date.now().toString(36)}` });
    assert.ok('checkpointId' in r);
    latest = r.checkpointId;
  });
  for (const phase of RESTART_PHASES) {
    test(`in ${phase}`, { timeout: RUNS * 120_000 }, async (t) => {
      for (let run = 1; run <= RUNS; run++) {
        const inside = run % 2 === 0;
        const started = Date.now();
        const r = await bed.vccr.restart(CLUSTER, { checkpointId: latest, force: true, noWait: true });
        assert.ok('workflowId' in r);
        const seen = await crashControllerAt(r.workflowId, RESTART_PHASES, phase, inside);
        await (await bed.temporal()).workflow.getHandle(r.workflowId).result();
        const doneAt = Date.now();
        const { manifest } = await bed.vccr.checkpoints.show(CLUSTER, latest);
        await Promise.all([assertRingContinued(bed, CLUSTER, manifest, HOME, 5, RING.map((v) => v.name)), assertClusterHealthy(bed)]);
        const detail = `killed ${inside ? 'inside' : 'at the start of'} ${phase} (workflow was in ${seen})`;
        t.diagnostic(`run ${run}: ${detail} → restarted, ring continued from the checkpoint`);
        t.diagnostic(`run ${run}: timeline (ms from start): killed ${timings.killedAt - started}, controller back ${timings.readyAt - started}, workflow ended ${doneAt - started}, checks done ${Date.now() - started}`);
        report({ suite: 'controller-crash', case: `restart/${phase}`, run, outcome: 'completed', maxPausedMs: 0, ms: Date.now() - started, detail, ok: true });
      }
    });
  }
});
