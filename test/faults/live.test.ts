// Fault cases of live checkpoints (mode 'live'), on the fault bed's cluster. In every case the cluster must
// run on without losing anything — above all no guest may freeze: on QEMU 7.2 a background snapshot whose
// stream breaks leaves the guest frozen for good, which is why the stream is received by a detached writer
// process and every failure drains it instead of cutting it. Each checkpoint either commits and restores
// exactly, or fails cleanly (failure recorded, no partial file left).
//   - the controller killed in each live phase (at its start or inside it) and started again;
//   - host b's worker killed during the background write and started again (the retried step joins the
//     detached writer);
//   - a QEMU killed during the background write (clear failure, the others run on; the cluster is then
//     brought back from a good checkpoint);
//   - the store filling up during the background write (ENOSPC): failed cleanly, the guest runs on.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { guestImageDir, type TestBed } from '../../harness/testbed';
import { Tmpfs } from '../../harness/tmpfs';
import { waitForConsole } from '../../harness/console';
import { sleep, terminate } from '../../node/proc';
import { assertClusterHealthy, assertStoreClean, CLUSTER, HOME, PAUSE_BOUND_S, PauseMonitor, random, report, restoreAndVerify, RUNS, startFaultBed, takeTheSpace } from './fault-bed';
import { outcomeOf, waitForPhase } from './waits';

/** The phases of a live checkpoint, in order, as the `progress` query names them. */
const LIVE_PHASES = ['prepare', 'capture', 'write', 'commit'];
const TYPICAL_MS: Record<string, number> = { prepare: 150, capture: 300, write: 3000, commit: 60 };

let bed: TestBed;
const mounts: Tmpfs[] = [];
before(async () => (bed = await startFaultBed({ testHooks: true })));
after(async () => {
  // The mounts live inside the bed's folder: unmount them before it is removed.
  for (const m of mounts) m.unmount();
  await bed?.stop();
});

async function startLive(id: string): Promise<string> {
  const started = await bed.vccr.checkpoint(CLUSTER, { checkpointId: id, live: true, noWait: true });
  assert.ok('workflowId' in started, 'the checkpoint was started, not awaited');
  return started.workflowId;
}

/** Committed: it restores exactly. Failed: recorded, nothing partial left. Either way every VM runs on. */
async function assertOutcome(id: string, outcome: string): Promise<void> {
  await Promise.all([assertClusterHealthy(bed), assertStoreClean(bed, outcome === 'completed' ? [id] : [])]);
  if (outcome === 'completed') await restoreAndVerify(bed, id);
  else assert.ok(existsSync(join(bed.store, CLUSTER, '_failed', `${id}.json`)), 'the failure is recorded');
}

describe('live checkpoint: controller worker killed', () => {
  for (const phase of LIVE_PHASES) {
    test(`in ${phase}`, { timeout: RUNS * 150_000 }, async (t) => {
      for (let run = 1; run <= RUNS; run++) {
        const inside = run % 2 === 0;
        const started = Date.now();
        const monitor = new PauseMonitor(bed, () => HOME);
        const id = `lc-${phase}-${run}-${Date.now().toString(36)}`;
        const workflowId = await startLive(id);
        const seen = await waitForPhase(bed, workflowId, LIVE_PHASES, phase);
        if (inside) await sleep(random(0, TYPICAL_MS[phase] ?? 100));
        const controller = bed.controllers.at(-1);
        assert.ok(controller);
        await controller.kill();
        await sleep(random(0, 1500));
        await bed.startController();
        const outcome = await outcomeOf(bed, workflowId);
        const maxPausedMs = await monitor.stop();
        assert.ok(maxPausedMs < PAUSE_BOUND_S * 1000, `paused ${maxPausedMs} ms`);
        await assertOutcome(id, outcome);
        t.diagnostic(`run ${run}: killed in ${seen}${inside ? ' (inside)' : ''}: ${outcome.slice(0, 200)}; longest pause seen ${maxPausedMs} ms`);
        report({ suite: 'live', case: `controller killed in ${phase}`, run, outcome: outcome.split(':')[0] ?? '', maxPausedMs, ms: Date.now() - started, detail: outcome, ok: true });
      }
    });
  }
});

test('live checkpoint: host worker killed during the background write and started again', { timeout: RUNS * 150_000 }, async (t) => {
  for (let run = 1; run <= RUNS; run++) {
    const started = Date.now();
    const monitor = new PauseMonitor(bed, () => HOME);
    const id = `lh-${run}-${Date.now().toString(36)}`;
    const workflowId = await startLive(id);
    await waitForPhase(bed, workflowId, LIVE_PHASES, 'write');
    await sleep(random(0, 1000));
    await bed.hostWorkers.get('b')?.kill();
    await sleep(random(0, 2000));
    await bed.startHost('b');
    const outcome = await outcomeOf(bed, workflowId);
    const maxPausedMs = await monitor.stop();
    await assertOutcome(id, outcome);
    t.diagnostic(`run ${run}: ${outcome.slice(0, 200)}; longest pause seen ${maxPausedMs} ms`);
    report({ suite: 'live', case: 'host worker killed during the write, restarted', run, outcome: outcome.split(':')[0] ?? '', maxPausedMs, ms: Date.now() - started, detail: outcome, ok: true });
  }
});

test('live checkpoint: a QEMU killed during the background write fails it clearly; the others run on', { timeout: RUNS * 200_000 }, async (t) => {
  const good = await bed.vccr.checkpoint(CLUSTER, { checkpointId: `lq-good-${Date.now().toString(36)}` });
  assert.ok('downtimeMs' in good);
  for (let run = 1; run <= RUNS; run++) {
    const started = Date.now();
    const victim = run % 2 ? 'heavy' : 'vm1';
    const id = `lq-${run}-${Date.now().toString(36)}`;
    const workflowId = await startLive(id);
    await waitForPhase(bed, workflowId, LIVE_PHASES, 'write');
    await sleep(random(0, 300));
    const record = bed.vmRecord(HOME[victim] ?? '', CLUSTER, victim);
    await terminate({ pid: record.pid, startTime: record.startTime }, 'SIGKILL');
    const outcome = await outcomeOf(bed, workflowId);
    // The victim's write may have finished just before it died: then the checkpoint is good.
    if (outcome !== 'completed') {
      assert.match(outcome, /failed in write/);
      assert.ok(existsSync(join(bed.store, CLUSTER, '_failed', `${id}.json`)), 'the failure is recorded');
    }
    await assertStoreClean(bed, outcome === 'completed' ? [id] : []);
    // The cluster is whole again from the last good checkpoint (or this one), and carries on exactly.
    const from = outcome === 'completed' ? id : good.checkpointId;
    await restoreAndVerify(bed, from);
    await assertClusterHealthy(bed);
    t.diagnostic(`run ${run}: ${victim} killed: ${outcome.slice(0, 200)}`);
    report({ suite: 'live', case: 'QEMU killed during the write', run, outcome: outcome.split(':')[0] ?? '', maxPausedMs: 0, ms: Date.now() - started, detail: outcome, ok: true });
  }
});

test('live checkpoint: the store fills up during the background write (ENOSPC): failed cleanly, the guest runs on', { timeout: RUNS * 90_000 + 120_000 }, async (t) => {
  const tmp = Tmpfs.mount(join(bed.dir, 'live-filling'), 256);
  mounts.push(tmp);
  const image = guestImageDir();
  const cluster = 'lfill';
  await bed.vccr.up({
    cluster,
    store: tmp.path,
    pauseBoundSeconds: 30,
    hosts: { a: {} },
    vms: [{ name: 'vm0', host: 'a', memoryMiB: 192, boot: { kernel: join(image, 'vmlinuz'), initrd: join(image, 'initrd.img'), append: 'console=ttyS0 quiet panic=-1 init_on_free=1 vccr.run=memfill vccr.args=--mb,96' } }],
  });
  const log = bed.consoleLog('a', cluster, 'vm0');
  await waitForConsole(log, /^MEMFILL READY/m, { timeoutMs: 120_000 });
  const pid = bed.vmRecord('a', cluster, 'vm0').pid;
  for (let run = 1; run <= RUNS; run++) {
    const started = Date.now();
    const id = `lfill-${run}`;
    const r = await bed.vccr.checkpoint(cluster, { checkpointId: id, live: true, noWait: true });
    assert.ok('workflowId' in r);
    await waitForPhase(bed, r.workflowId, LIVE_PHASES, 'capture');
    // Something else takes the space: leave about 20 MiB, less than the VM's state.
    takeTheSpace(tmp.path, join(tmp.path, 'ballast'));
    const outcome = await outcomeOf(bed, r.workflowId);
    rmSync(join(tmp.path, 'ballast'));
    assert.match(outcome, /failed: checkpoint lfill-\d+ of cluster lfill failed in (capture|write): .*(ENOSPC|no space)/i);
    const folders = readdirSync(join(tmp.path, cluster)).filter((e) => !e.startsWith('_'));
    assert.deepEqual(folders, [], 'no checkpoint folder left behind');
    assert.ok(existsSync(join(tmp.path, cluster, '_failed', `${id}.json`)), 'the failure is recorded');
    // The guest was not frozen by the broken write: same process, running, memfill goes on and its check holds.
    const status = await bed.vccr.status(cluster);
    assert.deepEqual(status.vms.map((v) => [v.name, v.alive, v.qmpStatus, v.pid]), [['vm0', true, 'running', pid]]);
    await waitForConsole(log, /^MEMFILL ALIVE/m, { from: readFileSync(log, 'utf8').length, timeoutMs: 30_000 });
    assert.doesNotMatch(readFileSync(log, 'utf8'), /MEMFILL ERROR/);
    t.diagnostic(`run ${run}: ${outcome.slice(0, 220)}`);
    report({ suite: 'live', case: 'store fills up during the write', run, outcome: 'failed cleanly', maxPausedMs: 0, ms: Date.now() - started, detail: outcome, ok: true });
  }
  await bed.vccr.down(cluster);
});
