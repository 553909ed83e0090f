// Fault case 3: a QEMU process is killed during a checkpoint — in its capture phase in half the runs, in
// its save in the other half (the checkpoint fails clearly and the rest of the cluster is resumed) — and
// during a restart while it waits for its state (the restart fails clearly and what it started is cleaned
// up). Each time the cluster is then brought back from its last good checkpoint (or from the checkpoint,
// if it committed before the kill), and carries on exactly from it. The pause and load windows are held
// open by test hooks on the victim's host, so each kill lands where the case says.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestBed } from '../../harness/testbed';
import { isAlive, sleep, terminate } from '../../node/proc';
import { assertRingContinued } from '../helpers/ring-check';
import { assertClusterHealthy, assertStoreClean, CHECKPOINT_PHASES, CLUSTER, HOME, PAUSE_BOUND_S, PauseMonitor, random, report, restoreAndVerify, RING, RUNS, startCheckpoint, startFaultBed, waitForHook } from './fault-bed';
import { outcomeOf, waitForPhase } from './waits';

let bed: TestBed;
let good = '';

before(async () => {
  bed = await startFaultBed({ testHooks: true });
  const r = await bed.vccr.checkpoint(CLUSTER, { checkpointId: 'good' });
  assert.ok('checkpointId' in r);
  good = r.checkpointId;
});
after(async () => {
  await bed?.stop();
});

async function killVm(vm: string): Promise<void> {
  const record = bed.vmRecord(HOME[vm] ?? '', CLUSTER, vm);
  await terminate({ pid: record.pid, startTime: record.startTime }, 'SIGKILL');
}

async function restoreGood(): Promise<void> {
  await bed.vccr.restart(CLUSTER, { checkpointId: good, force: true });
  const { manifest } = await bed.vccr.checkpoints.show(CLUSTER, good);
  await Promise.all([assertRingContinued(bed, CLUSTER, manifest, HOME, 5, RING.map((v) => v.name)), assertClusterHealthy(bed)]);
}

test('a QEMU killed during a checkpoint: clear failure, the other VMs resumed', { timeout: RUNS * 150_000 }, async (t) => {
  for (let run = 1; run <= RUNS; run++) {
    const started = Date.now();
    // Pause and save alternate; each victim gets both over four runs.
    const phase = run % 2 ? 'capture' : 'save';
    const victim = Math.floor(run / 2) % 2 ? 'vm1' : 'heavy';
    const monitor = new PauseMonitor(bed, () => HOME);
    const id = `qc-${run}-${Date.now().toString(36)}`;
    // In the capture phase: its host holds the victim's stop back a moment, and the victim dies meanwhile.
    if (phase === 'capture') bed.setHooks(HOME[victim] ?? '', { points: { [`pause:before-stop@${victim}`]: { delayMs: 1000, once: true } } });
    const workflowId = await startCheckpoint(bed, id);
    await waitForPhase(bed, workflowId, CHECKPOINT_PHASES, phase);
    if (phase === 'capture') await waitForHook(bed, HOME[victim] ?? '', 'pause:before-stop');
    else await sleep(random(0, 600));
    await killVm(victim);
    const outcome = await outcomeOf(bed, workflowId);
    bed.clearHooks();
    const maxPausedMs = await monitor.stop();
    if (outcome === 'completed') {
      // Killed after its state was saved: a valid checkpoint of the cluster as it was.
      assert.equal(phase, 'save', 'a VM killed before its stop cannot be in a committed checkpoint');
      await assertStoreClean(bed, [id]);
    } else {
      assert.match(outcome, new RegExp(`failed: checkpoint ${id} of cluster ${CLUSTER} failed in \\w+: .*${victim}`), 'the failure names the VM');
      await assertStoreClean(bed, []);
    }
    const status = await bed.vccr.status(CLUSTER);
    for (const vm of status.vms) {
      if (vm.name === victim) assert.equal(vm.alive, false);
      else assert.equal(vm.qmpStatus, 'running', `${vm.name} was resumed`);
    }
    assert.ok(maxPausedMs < PAUSE_BOUND_S * 1000, `paused ${maxPausedMs} ms`);
    if (outcome === 'completed') await restoreAndVerify(bed, id);
    else await restoreGood();
    t.diagnostic(`run ${run}: killed ${victim} in ${phase} → ${outcome.slice(0, 200)}; longest pause ${maxPausedMs} ms`);
    report({ suite: 'qemu-crash', case: 'during checkpoint', run, outcome: outcome.split(':')[0] ?? '', maxPausedMs, ms: Date.now() - started, detail: `${victim} in ${phase}: ${outcome}`, ok: true });
  }
});

test('a QEMU killed during a restart: clear failure, nothing left running, the next restart works', { timeout: RUNS * 150_000 }, async (t) => {
  for (let run = 1; run <= RUNS; run++) {
    const started = Date.now();
    const victim = run % 2 ? 'heavy' : 'vm2';
    // The victim's host holds its state back for a moment once QEMU waits for it: the kill lands in the load.
    bed.setHooks(HOME[victim] ?? '', { points: { [`load:before-send@${victim}`]: { delayMs: random(300, 1500), once: true } } });
    const r = await bed.vccr.restart(CLUSTER, { checkpointId: good, force: true, noWait: true });
    assert.ok('workflowId' in r);
    await waitForHook(bed, HOME[victim] ?? '', 'load:before-send');
    const record = bed.vmRecord(HOME[victim] ?? '', CLUSTER, victim);
    assert.ok(isAlive(record), `the restored ${victim} runs when it is killed`);
    await killVm(victim);
    const outcome = await outcomeOf(bed, r.workflowId);
    bed.clearHooks();
    assert.match(outcome, /failed: restart of cluster f failed in load/, 'a VM killed while it loads fails the restart');
    const status = await bed.vccr.status(CLUSTER);
    assert.deepEqual(status.vms.filter((v) => v.alive).map((v) => v.name), [], 'the failed restart left no VM running');
    assert.equal(status.state.status, 'down');
    await restoreGood();
    t.diagnostic(`run ${run}: killed ${victim} while loading → ${outcome.slice(0, 200)}`);
    report({ suite: 'qemu-crash', case: 'during restart', run, outcome: outcome.split(':')[0] ?? '', maxPausedMs: 0, ms: Date.now() - started, detail: `${victim}: ${outcome}`, ok: true });
  }
});
