// Fault case 6: concurrency. Two checkpoints of one cluster at once (one runs, the other is refused as
// busy — started straight through Temporal, so the client's early check cannot hide a race), a checkpoint
// during a restart (refused), and two clusters checkpointed at once (both correct).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { TestBed } from '../../harness/testbed';
import { guestImageDir } from '../../harness/testbed';
import { waitForConsole } from '../../harness/console';
import { sleep } from '../../node/proc';
import { DEFAULT_CONTROLLER_TASK_QUEUE } from '../../common/ids';
import { CLUSTER, RUNS, assertClusterHealthy, assertStoreClean, random, report, restoreAndVerify, startFaultBed } from './fault-bed';
import { outcomeOf, waitForPhase } from './waits';

let bed: TestBed;
before(async () => {
  bed = await startFaultBed();
  const image = guestImageDir();
  await bed.vccr.up({
    cluster: 'other',
    store: bed.store,
    hosts: { a: {}, b: {} },
    vms: ['a', 'b'].map((host) => ({
      name: `o-${host}`,
      host,
      memoryMiB: 128,
      boot: { kernel: join(image, 'vmlinuz'), initrd: join(image, 'initrd.img'), append: 'console=ttyS0 quiet panic=-1 init_on_free=1 vccr.run=memfill vccr.args=--mb,32' },
    })),
  });
  for (const host of ['a', 'b']) await waitForConsole(bed.consoleLog(host, 'other', `o-${host}`), /^MEMFILL READY/m, { timeoutMs: 120_000 });
});
after(async () => {
  await bed?.stop();
});

async function start(type: string, workflowId: string, input: unknown): Promise<void> {
  await (await bed.temporal()).workflow.start(type, { taskQueue: DEFAULT_CONTROLLER_TASK_QUEUE, workflowId, args: [input] });
}

test('two checkpoints of one cluster at once: one commits, the other is refused as busy', { timeout: RUNS * 90_000 }, async (t) => {
  for (let run = 1; run <= RUNS; run++) {
    const started = Date.now();
    const ids = [`twin-${run}-a`, `twin-${run}-b`];
    await Promise.all(ids.map((id) => start('checkpointCluster', `twin-${id}`, { cluster: CLUSTER, checkpointId: id })));
    const outcomes = await Promise.all(ids.map((id) => outcomeOf(bed, `twin-${id}`)));
    const committed = outcomes.filter((o) => o === 'completed');
    const refused = outcomes.filter((o) => /is busy: checkpoint twin-\d-[ab]/.test(o));
    assert.equal(committed.length, 1, `exactly one commits: ${outcomes.join(' | ')}`);
    assert.equal(refused.length, 1, `the other is refused as busy: ${outcomes.join(' | ')}`);
    await Promise.all([assertClusterHealthy(bed), assertStoreClean(bed, ids.filter((_, i) => outcomes[i] === 'completed'))]);
    await restoreAndVerify(bed, ids[outcomes.indexOf('completed')] ?? '');
    t.diagnostic(`run ${run}: ${outcomes.join(' | ').slice(0, 220)}`);
    report({ suite: 'concurrency', case: 'two checkpoints of one cluster', run, outcome: 'one committed, one refused', maxPausedMs: 0, ms: Date.now() - started, detail: outcomes.join(' | '), ok: true });
  }
});

test('a checkpoint during a restart is refused; the restart completes', { timeout: RUNS * 120_000 }, async (t) => {
  const base = await bed.vccr.checkpoint(CLUSTER, { checkpointId: 'during-base' });
  assert.ok('checkpointId' in base);
  for (let run = 1; run <= RUNS; run++) {
    const started = Date.now();
    const restartId = `restart-${run}`;
    await start('restartCluster', restartId, { cluster: CLUSTER, checkpointId: 'during-base', force: true });
    await waitForPhase(bed, restartId, ['validate', 'stop-old', 'launch', 'load', 'resume'], ['validate', 'launch', 'load'][run % 3] ?? 'load');
    await sleep(random(0, 200));
    await start('checkpointCluster', `during-${run}`, { cluster: CLUSTER, checkpointId: `during-${run}` });
    const [restart, checkpoint] = await Promise.all([outcomeOf(bed, restartId), outcomeOf(bed, `during-${run}`)]);
    assert.equal(restart, 'completed');
    assert.match(checkpoint, /is busy: restart/);
    await Promise.all([assertClusterHealthy(bed), assertStoreClean(bed, [])]);
    t.diagnostic(`run ${run}: restart ${restart}; checkpoint ${checkpoint.slice(0, 160)}`);
    report({ suite: 'concurrency', case: 'checkpoint during restart', run, outcome: 'refused', maxPausedMs: 0, ms: Date.now() - started, detail: checkpoint, ok: true });
  }
});

test('two clusters checkpointed at once: both commit and verify', { timeout: RUNS * 90_000 }, async (t) => {
  for (let run = 1; run <= RUNS; run++) {
    const started = Date.now();
    const [f, o] = await Promise.all([
      bed.vccr.checkpoint(CLUSTER, { checkpointId: `pair-${run}` }),
      bed.vccr.checkpoint('other', { checkpointId: `pair-${run}` }),
    ]);
    assert.ok('downtimeMs' in f && 'downtimeMs' in o);
    await Promise.all([assertClusterHealthy(bed), assertStoreClean(bed, [`pair-${run}`]), assertStoreClean(bed, [`pair-${run}`], bed.store, 'other')]);
    await restoreAndVerify(bed, `pair-${run}`);
    t.diagnostic(`run ${run}: both committed (downtime ${f.downtimeMs} ms and ${o.downtimeMs} ms)`);
    report({ suite: 'concurrency', case: 'two clusters at once', run, outcome: 'both committed', maxPausedMs: 0, ms: Date.now() - started, detail: '', ok: true });
  }
});
