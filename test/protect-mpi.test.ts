// The whole point of protection, end to end: a self-checking Open MPI job across 3 VMs on hosts a and b
// (host c is a spare), protected every few seconds. Mid-run, host b dies — its worker and its QEMU are
// SIGKILLed. No command is typed after `protect`: the watch notices, fences (the spec says an unreachable
// host is dead), moves b's VM to c and restarts the whole cluster from the newest checkpoint that
// verifies; the job finishes with the checksum this test computes independently.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestBed } from '../harness/testbed';
import { readConsole, waitForConsole } from '../harness/console';
import { killRecordedVms } from '../harness/janitor';
import { sleep } from '../node/proc';
import { MPI_VMS, assertMpiFinishedFrom, mpiIterations as iterations, mpiSpec } from './helpers/mpi';

const CLUSTER = 'mpiprot';
const ITERATIONS = 200;
const VMS = MPI_VMS;
let bed: TestBed;

before(async () => {
  bed = await TestBed.start({ hosts: ['a', 'b', 'c'], taps: 3 });
});

after(async () => {
  await bed?.vccr.protection.off(CLUSTER).catch(() => undefined);
  await bed?.stop();
});

test('host b dies mid-run: the protected MPI job comes back on the spare host by itself and finishes correctly', { timeout: 900_000 }, async (t) => {
  await bed.vccr.up(mpiSpec(bed, CLUSTER, VMS, ITERATIONS, { hosts: { a: {}, b: {}, c: {} }, spareHosts: ['c'], fencing: 'unreachable-is-dead' }));
  const rank0 = bed.consoleLog('a', CLUSTER, 'mpi0');
  await waitForConsole(rank0, /^MPI ITER 5\/\d+ ok$/m, { timeoutMs: 300_000 });
  await bed.vccr.protection.protect(CLUSTER, {
    everyMs: 10_000,
    jitterMs: 0,
    retention: { keepLast: 3 },
    watch: { checkEverySeconds: 2, graceSeconds: 5, pickupSeconds: 3 },
  });

  // Let protection take a couple of checkpoints while the job runs.
  for (let i = 0; i < 600 && (await bed.vccr.checkpoints.list(CLUSTER)).committed.length < 2; i++) await sleep(500);
  const progressAtKill = iterations(readConsole(rank0)).at(-1) ?? 0;
  assert.ok(progressAtKill < ITERATIONS - 20, `the job is still mid-run (iteration ${progressAtKill} of ${ITERATIONS})`);

  const killedAt = Date.now();
  await bed.hostWorkers.get('b')?.kill();
  await killRecordedVms(bed.hostStateDir('b'));
  t.diagnostic(`host b killed at iteration ${progressAtKill}`);

  // Nothing is typed from here on: wait for the watch to recover the cluster onto c.
  let state = await bed.vccr.protection.watchState(CLUSTER);
  for (let i = 0; i < 1200 && !(state?.recoveries.some((r) => r.outcome === 'completed') && state.phase === 'watching'); i++) {
    await sleep(250);
    state = await bed.vccr.protection.watchState(CLUSTER);
  }
  for (const r of state?.recoveries ?? []) t.diagnostic(`recovery ${r.workflowId}: ${r.outcome} after ${r.endedAt - r.startedAt} ms: ${r.detail}`);
  const recovery = state?.recoveries.find((r) => r.outcome === 'completed');
  assert.ok(recovery?.checkpointId, `recovered (watch: ${state?.phase}: ${state?.reason})`);
  assert.deepEqual(recovery.placement, { mpi0: 'a', mpi1: 'c', mpi2: 'a' }, "b's VM runs on the spare host c");
  t.diagnostic(`host died → every VM running again: ${recovery.endedAt - killedAt} ms (recovered from ${recovery.checkpointId})`);

  const { manifest } = await bed.vccr.checkpoints.show(CLUSTER, recovery.checkpointId);
  t.diagnostic(`after the recovery: ${await assertMpiFinishedFrom(rank0, manifest, ITERATIONS)}`);
});
