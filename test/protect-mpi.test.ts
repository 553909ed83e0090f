// The whole point of protection, end to end: a self-checking Open MPI job across 3 VMs on hosts a and b
// (host c is a spare), protected every few seconds. Mid-run, host b dies — its worker and its QEMU are
// SIGKILLed. No command is typed after `protect`: the watch notices, fences (the spec says an unreachable
// host is dead), moves b's VM to c and restarts the whole cluster from the newest checkpoint that
// verifies; the job finishes with the checksum this test computes independently.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { TestBed, guestImageDir } from '../harness/testbed';
import { readConsole, waitForConsole } from '../harness/console';
import { killRecordedVms } from '../harness/janitor';
import { sleep } from '../common/proc';
import type { ClusterSpecInput } from '../common/spec';
import { expectedChecksum } from './helpers/mpi';
import { sinceLastRestore } from './helpers/ring-check';

const CLUSTER = 'mpiprot';
const ITERATIONS = 200;
const VMS = [
  { name: 'mpi0', host: 'a' },
  { name: 'mpi1', host: 'b' },
  { name: 'mpi2', host: 'a' },
];
let bed: TestBed;

function spec(): ClusterSpecInput {
  const image = guestImageDir();
  const ips = VMS.map((_, i) => `10.77.0.${11 + i}`);
  return {
    cluster: CLUSTER,
    store: bed.store,
    pauseBoundSeconds: 60,
    hosts: { a: {}, b: {}, c: {} },
    spareHosts: ['c'],
    fencing: 'unreachable-is-dead',
    vms: VMS.map((vm, i) => ({
      name: vm.name,
      host: vm.host,
      memoryMiB: 256,
      boot: {
        kernel: join(image, 'vmlinuz'),
        initrd: join(image, 'initrd-mpi.img'),
        append: [
          'console=ttyS0 quiet panic=-1 init_on_free=1',
          `vccr.ip=${ips[i]}/24 vccr.run=mpi`,
          `vccr.args=--node,${i},${ips.map((ip) => `--host,${ip}`).join(',')},--,--iterations,${ITERATIONS},--sleep-ms,200`,
        ].join(' '),
      },
      nics: [{ id: 'net0', tap: bed.network?.taps[i] ?? '' }],
      netns: bed.network?.name,
    })),
  };
}

const iterations = (text: string) => [...text.matchAll(/^MPI ITER (\d+)\/\d+ ok$/gm)].map((m) => Number(m[1]));

before(async () => {
  bed = await TestBed.start({ hosts: ['a', 'b', 'c'], taps: 3 });
});

after(async () => {
  await bed?.vccr.protection.off(CLUSTER).catch(() => undefined);
  await bed?.stop();
});

test('host b dies mid-run: the protected MPI job comes back on the spare host by itself and finishes correctly', { timeout: 900_000 }, async (t) => {
  await bed.vccr.up(spec());
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
  const m0 = manifest.vms.find((v) => v.name === 'mpi0');
  assert.ok(m0?.console);
  const atCheckpoint = iterations(readConsole(m0.console.path, 0, m0.console.offsetAtPause)).at(-1) ?? 0;
  const restoredFrom = readConsole(rank0).lastIndexOf('=== vccr: restoring');
  const done = await waitForConsole(rank0, /^MPI RESULT (OK|FAIL).*$/m, { from: restoredFrom, timeoutMs: 600_000 });
  await waitForConsole(rank0, /^VCCR-WORKLOAD-EXIT code=\d+$/m, { from: restoredFrom, timeoutMs: 60_000 });
  const after = sinceLastRestore(rank0, recovery.checkpointId);
  t.diagnostic(`after the recovery: ${after.split('\n').filter((l) => l.startsWith('MPI')).slice(-2).join(' | ')}`);
  assert.doesNotMatch(after, /^MPI (ERROR|LAUNCH)/m, 'no MPI error and no relaunch after the recovery');
  assert.equal(iterations(after)[0], atCheckpoint + 1, 'the job continues from the iteration after the checkpoint');
  assert.equal(done[0], `MPI RESULT OK checksum=${expectedChecksum(3, ITERATIONS, 4096)}`);
  assert.match(after, /^VCCR-WORKLOAD-EXIT code=0$/m);
});
