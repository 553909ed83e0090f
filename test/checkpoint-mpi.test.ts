// A real Open MPI job across 3 VMs on 2 host workers is checkpointed mid-run, every VM is killed, the
// cluster is restarted from the checkpoint, and the job finishes with the correct result (the checksum
// this test computes independently) — the MPI library's TCP connections and its ranks' memory survive.
// (test/live-mpi.test.ts runs the same with a live checkpoint.)
import { after, before, test } from 'node:test';
import { TestBed } from '../harness/testbed';
import { checkpointMpiMidRun } from './helpers/mpi';

let bed: TestBed;

before(async () => (bed = await TestBed.start({ hosts: ['a', 'b'], taps: 3 })));
after(() => bed?.stop());

test('an Open MPI job checkpointed mid-run, killed and restarted finishes with the correct result', { timeout: 600_000 }, async (t) => {
  for (const line of await checkpointMpiMidRun(bed, 'mpi', 100, false)) t.diagnostic(line);
});
