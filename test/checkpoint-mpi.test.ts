// A real Open MPI job across 3 VMs on 2 host workers is checkpointed mid-run, every VM is killed, the
// cluster is restarted from the checkpoint, and the job finishes with the correct result (the checksum
// this test computes independently) — the MPI library's TCP connections and its ranks' memory survive.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestBed } from '../harness/testbed';
import { waitForConsole } from '../harness/console';
import { MPI_VMS, assertMpiFinishedFrom, mpiIterationAtCheckpoint, mpiSpec } from './helpers/mpi';

const CLUSTER = 'mpi';
const ITERATIONS = 100;
const VMS = MPI_VMS;
let bed: TestBed;

before(async () => (bed = await TestBed.start({ hosts: ['a', 'b'], taps: 3 })));
after(() => bed?.stop());

test('an Open MPI job checkpointed mid-run, killed and restarted finishes with the correct result', { timeout: 600_000 }, async (t) => {
  await bed.vccr.up(mpiSpec(bed, CLUSTER, VMS, ITERATIONS));
  const rank0 = bed.consoleLog('a', CLUSTER, 'mpi0');
  await waitForConsole(rank0, /^MPI ITER 15\/\d+ ok$/m, { timeoutMs: 300_000 });

  const result = await bed.vccr.checkpoint(CLUSTER);
  assert.ok('downtimeMs' in result);
  t.diagnostic(`checkpoint of the MPI cluster: downtime ${result.downtimeMs} ms, ${result.totalBytes} bytes`);
  const { manifest } = await bed.vccr.checkpoints.show(CLUSTER, result.checkpointId);
  const atCheckpoint = mpiIterationAtCheckpoint(manifest);
  assert.ok(atCheckpoint > 0 && atCheckpoint < ITERATIONS, `checkpointed mid-run (iteration ${atCheckpoint} of ${ITERATIONS})`);

  // The job goes on after the checkpoint; then the whole cluster dies.
  await waitForConsole(rank0, new RegExp(`^MPI ITER ${atCheckpoint + 10}/\\d+ ok$`, 'm'), { timeoutMs: 120_000 });
  assert.equal((await bed.killAllVms()).length, 3);

  await bed.vccr.restart(CLUSTER, { checkpointId: result.checkpointId });
  t.diagnostic(`after the restore: ${await assertMpiFinishedFrom(rank0, result.checkpointId, atCheckpoint, ITERATIONS)}`);
});
