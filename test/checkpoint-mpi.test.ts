// A real Open MPI job across 3 VMs on 2 host workers is checkpointed mid-run, every VM is killed, the
// cluster is restarted from the checkpoint, and the job finishes with the correct result (the checksum
// this test computes independently) — the MPI library's TCP connections and its ranks' memory survive.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { TestBed, guestImageDir } from '../harness/testbed';
import { readConsole, waitForConsole } from '../harness/console';
import type { ClusterSpecInput } from '../common/spec';
import { expectedChecksum } from './helpers/mpi';
import { sinceLastRestore } from './helpers/ring-check';

const CLUSTER = 'mpi';
const ITERATIONS = 100;
const VMS = [
  { name: 'mpi0', host: 'a' },
  { name: 'mpi1', host: 'b' },
  { name: 'mpi2', host: 'a' },
];
let bed: TestBed;

function spec(): ClusterSpecInput {
  if (!bed.network) throw new Error('no network');
  const image = guestImageDir();
  const ips = VMS.map((_, i) => `10.77.0.${11 + i}`);
  return {
    cluster: CLUSTER,
    store: bed.store,
    pauseBoundSeconds: 60,
    hosts: { a: {}, b: {} },
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
  bed = await TestBed.start({ hosts: ['a', 'b'], taps: 3 });
});

after(async () => {
  await bed?.stop();
});

test('an Open MPI job checkpointed mid-run, killed and restarted finishes with the correct result', { timeout: 600_000 }, async (t) => {
  await bed.vccr.up(spec());
  const rank0 = bed.consoleLog('a', CLUSTER, 'mpi0');
  await waitForConsole(rank0, /^MPI ITER 15\/\d+ ok$/m, { timeoutMs: 300_000 });

  const result = await bed.vccr.checkpoint(CLUSTER);
  assert.ok('downtimeMs' in result);
  t.diagnostic(`checkpoint of the MPI cluster: downtime ${result.downtimeMs} ms, ${result.totalBytes} bytes`);
  const { manifest } = await bed.vccr.checkpoints.show(CLUSTER, result.checkpointId);
  const rank0Manifest = manifest.vms.find((v) => v.name === 'mpi0');
  assert.ok(rank0Manifest?.console);
  const atCheckpoint = iterations(readConsole(rank0Manifest.console.path, 0, rank0Manifest.console.offsetAtPause)).at(-1) ?? 0;
  assert.ok(atCheckpoint > 0 && atCheckpoint < ITERATIONS, `checkpointed mid-run (iteration ${atCheckpoint} of ${ITERATIONS})`);

  // The job goes on after the checkpoint; then the whole cluster dies.
  await waitForConsole(rank0, new RegExp(`^MPI ITER ${atCheckpoint + 10}/\\d+ ok$`, 'm'), { timeoutMs: 120_000 });
  assert.equal((await bed.killAllVms()).length, 3);

  await bed.vccr.restart(CLUSTER, { checkpointId: result.checkpointId });
  const done = await waitForConsole(rank0, /^MPI RESULT (OK|FAIL).*$/m, { from: readConsole(rank0).lastIndexOf('=== vccr: restoring'), timeoutMs: 300_000 });

  const restoredFrom = readConsole(rank0).lastIndexOf('=== vccr: restoring');
  await waitForConsole(rank0, /^VCCR-WORKLOAD-EXIT code=\d+$/m, { from: restoredFrom, timeoutMs: 60_000 });
  const after = sinceLastRestore(rank0, result.checkpointId);
  t.diagnostic(`after the restore: ${after.split('\n').filter((l) => l.startsWith('MPI')).slice(-2).join(' | ')}`);
  assert.doesNotMatch(after, /^MPI (ERROR|LAUNCH)/m, 'no MPI error and no relaunch after the restore');
  assert.equal(iterations(after)[0], atCheckpoint + 1, 'the job continues from the iteration after the checkpoint');
  assert.equal(done[0], `MPI RESULT OK checksum=${expectedChecksum(3, ITERATIONS, 4096)}`);
  assert.match(after, /^VCCR-WORKLOAD-EXIT code=0$/m);
});
