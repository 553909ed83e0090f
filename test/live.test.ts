// Live checkpoints through the real workflows, workers and QEMU (the fault bed's cluster: a 3-node token
// ring across hosts a and b, memfill with a disk, the disk journal): the guests pause only to fix the cut,
// their RAM is written while they run, and a restart from it continues every detector exactly. The
// negative control delays one VM's stop (test hook) until the others already run again: the cut check
// must refuse that checkpoint, the VMs run on untouched, and nothing but a failure record is left. Forced
// through — a host whose clock is ahead by more than ε, which the prepare window cannot show because another
// host's prepare is slow — the broken cut commits, and the ring detector catches it after the restart.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestBed } from '../harness/testbed';
import { ringErrors } from '../harness/console';
import { sleep } from '../node/proc';
import { sinceLastRestore } from './helpers/ring-check';
import { ALL_VMS, assertClusterHealthy, assertStoreClean, CLUSTER, PauseMonitor, restoreAndVerify, RING, startFaultBed } from './faults/fault-bed';

let bed: TestBed;
before(async () => (bed = await startFaultBed({ testHooks: true })));
after(() => bed?.stop());

let committed = '';

test('live checkpoint while the guests run: manifest records mode, STOP/RESUME and the cut; restart continues every detector', { timeout: 300_000 }, async (t) => {
  const monitor = new PauseMonitor(bed, () => Object.fromEntries(ALL_VMS.map((vm) => [vm, vm === 'vm1' || vm === 'heavy' ? 'b' : 'a'])));
  const result = await bed.vccr.checkpoint(CLUSTER, { live: true, checkpointId: 'live-1' }).finally(() => monitor.stop().catch(() => undefined));
  const longestSeenPaused = monitor.maxPausedMs;
  assert.ok('downtimeMs' in result, 'the checkpoint completed');
  committed = result.checkpointId;
  const { manifest } = await bed.vccr.checkpoints.show(CLUSTER, committed);
  assert.equal(manifest.mode, 'live');
  assert.ok(manifest.cut, 'the manifest keeps the cut check inputs');
  assert.ok(manifest.cut.lastStopAt + manifest.cut.toleranceMs < manifest.cut.firstResumeAt, 'every STOP (+ε) precedes every RESUME');
  for (const vm of manifest.vms) {
    const { stoppedAt, resumedAt } = vm.timings;
    assert.ok(stoppedAt !== undefined && resumedAt !== undefined && stoppedAt < resumedAt, `${vm.name}: STOP before RESUME`);
    // The RAM was written after the guest ran again: the file's end is later than its RESUME.
    assert.ok(vm.timings.savedAt >= resumedAt, `${vm.name}: written after its resume`);
  }
  t.diagnostic(
    `live: downtime ${result.downtimeMs} ms (first STOP → last RESUME), pause skew ${result.pauseSkewMs} ms, ` +
      `cut margin ${manifest.cut.marginMs.toFixed(3)} ms, ${result.totalBytes} bytes, write phase ` +
      `${(result.phases['write']?.end ?? 0) - (result.phases['write']?.start ?? 0)} ms; longest pause the monitor saw ${longestSeenPaused} ms`,
  );
  await assertStoreClean(bed, [committed]);
  await bed.killAllVms();
  await restoreAndVerify(bed, committed);
});

test('negative control: one VM stopped after the others ran again — the cut check refuses it, the VMs run on', { timeout: 300_000 }, async (t) => {
  // vm1 (host b) stops 3 s late: every other VM (on host a, and heavy beside it on b) has long been resumed
  // by its snapshot by then; the reason names the pair with the least slack.
  bed.setHooks('b', { points: { 'pause:before-stop@vm1': { delayMs: 3000 } } });
  try {
    await assert.rejects(bed.vccr.checkpoint(CLUSTER, { live: true, checkpointId: 'live-broken' }), (err: Error) => {
      t.diagnostic(`refused: ${err.message}`);
      assert.match(err.message, /the cut is not consistent: VM \S+ \(host [ab]\) ran again .* before VM vm1 \(host b\) was stopped/);
      return true;
    });
  } finally {
    bed.clearHooks();
  }
  const failure = join(bed.store, CLUSTER, '_failed', 'live-broken.json');
  assert.ok(existsSync(failure), 'the failure is recorded');
  assert.match(readFileSync(failure, 'utf8'), /cut is not consistent/);
  assert.ok(!existsSync(join(bed.store, CLUSTER, 'live-broken')), 'its folder (and state files) are removed');
  await assertClusterHealthy(bed);
  await assertStoreClean(bed, committed ? [committed] : []);
});

test('negative control forced through: a host clock ahead by more than ε hides the broken cut; the ring detector catches it after the restart', { timeout: 300_000 }, async (t) => {
  // Host b's clock runs 600 ms ahead: it stops and snapshots 600 ms before host a stops, and reports its
  // STOP/RESUME 600 ms later than they were — on time. Host a's prepare takes 1 s, so the prepare window
  // ([sent − ε, seen + ε]) is wide enough that b's clock passes the clock check.
  // The store barrier would keep the cut whatever the clocks say (host b would wait for a's mark): both
  // hosts ignore the marks, so the timed plan alone decides, as without the barrier.
  const noBarrier = { 'live:barrier': { action: 'fail' as const } };
  bed.setHooks('b', { clockOffsetMs: 600, points: noBarrier });
  bed.setHooks('a', { points: { 'step:prepareCheckpoint': { delayMs: 1000 }, ...noBarrier } });
  let result;
  try {
    result = await bed.vccr.checkpoint(CLUSTER, { live: true, checkpointId: 'live-forced' });
  } finally {
    bed.clearHooks();
  }
  assert.ok('downtimeMs' in result, 'the broken cut passed the check (the clock assumption was violated)');
  const { manifest } = await bed.vccr.checkpoints.show(CLUSTER, 'live-forced');
  t.diagnostic(`committed with reported cut margin ${manifest.cut?.marginMs.toFixed(3)} ms`);
  await bed.killAllVms();
  await bed.vccr.restart(CLUSTER, { checkpointId: 'live-forced' });
  const deadline = Date.now() + 90_000;
  let errors: string[] = [];
  while (Date.now() < deadline) {
    errors = RING.flatMap((vm) => ringErrors(sinceLastRestore(bed.consoleLog(vm.host, CLUSTER, vm.name), 'live-forced')).map((e) => `${vm.name}: ${e}`));
    if (errors.length) break;
    await sleep(250);
  }
  t.diagnostic(`detected: ${errors.join(' | ')}`);
  assert.ok(errors.length > 0, 'the ring reports the inconsistency (stall, reset, duplicate or skipped token)');
  // Leave the cluster whole for whatever runs next.
  await bed.vccr.restart(CLUSTER, { checkpointId: committed, force: true });
});
