// The Open MPI job of test/checkpoint-mpi.test.ts with a *live* checkpoint: the ranks pause only to fix the
// cut, their RAM is written while the job computes on; killed and restarted from that checkpoint, the job
// finishes with the correct result — the cut the hosts' STOP/RESUME times proved holds for MPI's TCP
// connections and the ranks' memory.
import { after, before, test } from 'node:test';
import { TestBed } from '../harness/testbed';
import { checkpointMpiMidRun } from './helpers/mpi';

let bed: TestBed;

before(async () => (bed = await TestBed.start({ hosts: ['a', 'b'], taps: 3 })));
after(() => bed?.stop());

test('an Open MPI job live-checkpointed mid-run, killed and restarted finishes with the correct result', { timeout: 600_000 }, async (t) => {
  for (const line of await checkpointMpiMidRun(bed, 'mpilive', 100, true)) t.diagnostic(line);
});
