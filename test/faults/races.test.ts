// Races: the promises — no VM stays paused past the bound, a committed checkpoint is a consistent cut that
// restores, garbage collection never deletes a layer someone needs, a host worker acts only on valid
// requests for its own VMs — under interleavings, not only under crashes. Each defect found by reading
// the code has a test here that failed before its fix (see the commit that fixed it). Narrow windows are
// opened with test-only hook points in the workers (activities/test-hooks.ts, enabled by the bed's
// `testHooks`), so every interleaving here is forced, not hoped for. Then: clock skew on one host,
// ordering chaos, and system-level negative controls for the disk journal and memfill.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker, NativeConnection } from '@temporalio/worker';
import type { TestBed } from '../../harness/testbed';
import { consoleAtPause } from '../../harness/ring';
import { QmpClient } from '../../activities/qmp';
import { sleep } from '../../node/proc';
import { writeFileAtomic } from '../../node/fsutil';
import { DEFAULT_CONTROLLER_TASK_QUEUE, hostTaskQueue } from '../../common/ids';
import type { Manifest } from '../../common/manifest';
import { assertRingContinued, sinceLastRestore } from '../helpers/ring-check';
import { memfillAlive } from '../helpers/continuation';
import type { RawHostCall } from '../helpers/host-requests-workflow';
import {
  CLUSTER,
  HEAVY,
  HOME,
  JOURNAL,
  PAUSE_BOUND_S,
  PauseMonitor,
  RUNS,
  assertClusterHealthy,
  assertContinuedFrom,
  assertStoreClean,
  report,
  restoreAndVerify,
  startCheckpoint,
  startFaultBed,
  waitForHook,
} from './fault-bed';
import { outcomeOf } from './waits';

const CHAOS_RUNS = Math.max(1, Number(process.env.VCCR_CHAOS_RUNS ?? RUNS));
const BOUND_MS = PAUSE_BOUND_S * 1000;
let bed: TestBed;

before(async () => {
  bed = await startFaultBed({ testHooks: true });
  const base = await bed.vccr.checkpoint(CLUSTER, { checkpointId: 'base' });
  assert.ok('checkpointId' in base);
});
after(async () => {
  await bed?.stop();
});
// Whatever a case did (or, before its fix, failed to undo), the next one starts from a healthy cluster.
afterEach(async () => {
  await heal();
});

// ---- helpers ------------------------------------------------------------------------------------------

async function onGuard<T>(vm: string, use: (qmp: QmpClient) => Promise<T>): Promise<T> {
  const qmp = await QmpClient.connect(bed.vmRecord(HOME[vm] ?? '', CLUSTER, vm).guardSocket, { connectTimeoutMs: 5000 });
  try {
    return await use(qmp);
  } finally {
    await qmp.close();
  }
}
const runState = (vm: string) => onGuard(vm, async (qmp) => (await qmp.command('query-status')).status).catch(() => 'unreachable');
/** What an operator (or a stale release) does: resume the VM behind the protocol's back. */
const operatorCont = (vm: string) => onGuard(vm, (qmp) => qmp.command('cont'));

const waitReached = (target: string, point: string, timeoutMs?: number) => waitForHook(bed, target, point, timeoutMs);

/** Waits until every VM runs, or `ms` passed; returns the ones that do not. */
async function notRunningAfter(ms: number): Promise<string[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const states = await Promise.all(Object.keys(HOME).map(async (vm) => [vm, await runState(vm)] as const));
    const stuck = states.filter(([, s]) => s !== 'running').map(([vm, s]) => `${vm}:${s}`);
    if (!stuck.length || Date.now() > deadline) return stuck;
    await sleep(250);
  }
}

async function startRaw(checkpointId: string, workflowId: string): Promise<string> {
  await (await bed.temporal()).workflow.start('checkpointCluster', {
    taskQueue: DEFAULT_CONTROLLER_TASK_QUEUE,
    workflowId,
    args: [{ cluster: CLUSTER, checkpointId }],
    workflowTaskTimeout: '3 seconds',
  });
  return workflowId;
}
const cancel = async (workflowId: string) => (await bed.temporal()).workflow.getHandle(workflowId).cancel();

/** Every disk layer a running VM's chain or a committed manifest names, that is missing. */
function missingLayers(): string[] {
  const named: string[] = [];
  const disks = join(bed.store, CLUSTER, '_disks');
  for (const vm of existsSync(disks) ? readdirSync(disks) : []) {
    for (const disk of readdirSync(join(disks, vm))) {
      const chain = join(disks, vm, disk, 'chain.json');
      if (!existsSync(chain)) continue;
      const c = JSON.parse(readFileSync(chain, 'utf8')) as { active: string; backing: string[] };
      named.push(c.active, ...c.backing);
    }
  }
  for (const id of readdirSync(join(bed.store, CLUSTER))) {
    const path = join(bed.store, CLUSTER, id, 'manifest.json');
    if (id.startsWith('_') || !existsSync(path)) continue;
    try {
      const m = JSON.parse(readFileSync(path, 'utf8')) as Manifest;
      for (const vm of m.vms) for (const d of vm.disks) named.push(d.frozen, ...d.backing);
    } catch {
      // a manifest a test damaged on purpose
    }
  }
  return [...new Set(named)].filter((l) => !existsSync(l));
}

async function heal(): Promise<void> {
  bed.clearHooks();
  const client = await bed.temporal();
  let terminated = 0;
  for await (const wf of client.workflow.list({ query: `VccrCluster = "${CLUSTER}" AND ExecutionStatus = "Running"` })) {
    if (wf.workflowId.startsWith('vccr-cluster-')) continue;
    await client.workflow.getHandle(wf.workflowId).terminate('race case over').catch(() => undefined);
    terminated++;
  }
  if (terminated) {
    // The lock of a terminated operation is taken over by the next acquire: let a delete of nothing do that.
    await client.workflow
      .execute('deleteCheckpoint', { taskQueue: DEFAULT_CONTROLLER_TASK_QUEUE, workflowId: `heal-${Date.now()}`, args: [{ cluster: CLUSTER, checkpointId: 'no-such-checkpoint' }] })
      .catch(() => undefined);
  }
  for (const host of ['a', 'b']) if (!bed.hostWorkers.get(host)?.alive) await bed.startHost(host);
  for (const vm of Object.keys(HOME)) if (['paused', 'postmigrate'].includes(await runState(vm))) await operatorCont(vm).catch(() => undefined);
  const status = await bed.vccr.status(CLUSTER);
  const healthy =
    status.vms.every((v) => v.alive && v.qmpStatus === 'running') &&
    !missingLayers().length &&
    (await assertClusterHealthy(bed).then(
      () => true,
      () => false,
    ));
  if (!healthy) {
    await bed.vccr.restart(CLUSTER, { checkpointId: 'base', force: true });
    await assertClusterHealthy(bed);
  }
}

/** A committed checkpoint is restored and must continue exactly; for a case that must not commit, why it is bad. */
async function restoreProblems(id: string): Promise<string> {
  return restoreAndVerify(bed, id).then(
    () => 'the restore looked right',
    (err: unknown) => (err instanceof Error ? err.message.split('\n')[0] ?? '' : String(err)),
  );
}

function note(caseName: string, outcome: string, started: number, maxPausedMs = 0, detail = ''): void {
  report({ suite: 'races', case: caseName, run: 1, outcome, maxPausedMs, ms: Date.now() - started, detail, ok: true, asked: 1 });
}

// ---- defect 1: a VM left paused forever -----------------------------------------------------------------

describe('defect 1: no VM is left paused by a step that arrives after the checkpoint ended', () => {
  test('a stop delayed past the abandon does not pause the VM', { timeout: 120_000 }, async (t) => {
    const started = Date.now();
    bed.setHooks('a', { points: { 'pause:before-stop@vm0': { delayMs: 4000, once: true } } });
    const monitor = new PauseMonitor(bed, () => HOME);
    const workflowId = await startCheckpoint(bed, 'late-stop');
    await waitReached('a', 'pause:before-stop');
    await cancel(workflowId);
    const outcome = await outcomeOf(bed, workflowId);
    assert.match(outcome, /failed: .*cancelled/);
    await sleep(5000); // the delayed stop has had its chance
    const stuck = await notRunningAfter(2000);
    const maxPausedMs = await monitor.stop();
    assert.deepEqual(stuck, [], 'every VM runs after the checkpoint was cancelled');
    assert.ok(maxPausedMs < BOUND_MS, `paused ${maxPausedMs} ms`);
    t.diagnostic(`${outcome.slice(0, 160)}; longest pause ${maxPausedMs} ms`);
    note('late stop after abandon', 'failed cleanly', started, maxPausedMs, outcome);
  });

  test('a host worker dying between the abandon and its cont leaves the VM to the pause guard', { timeout: 150_000 }, async (t) => {
    const started = Date.now();
    bed.setHooks('a', {
      points: {
        'save:before-migrate@journal': { delayMs: 3000, once: true },
        'resume:before-cont@vm0': { action: 'crash', once: true },
      },
    });
    const monitor = new PauseMonitor(bed, () => HOME);
    const workflowId = await startCheckpoint(bed, 'dies-before-cont');
    await waitReached('a', 'save:before-migrate');
    await cancel(workflowId);
    await waitReached('a', 'resume:before-cont');
    // Worker a is gone and stays gone: only its pause guard can resume vm0 now.
    const stuck = await notRunningAfter(BOUND_MS + 3000);
    const maxPausedMs = await monitor.stop();
    assert.deepEqual(stuck, [], 'every VM runs again without its host worker');
    assert.ok(maxPausedMs < BOUND_MS, `every VM resumed within the bound (longest pause ${maxPausedMs} ms)`);
    await bed.startHost('a');
    const outcome = await outcomeOf(bed, workflowId);
    t.diagnostic(`${outcome.slice(0, 200)}; longest pause ${maxPausedMs} ms`);
    note('worker dies between abandon and cont', 'failed cleanly', started, maxPausedMs, outcome);
  });
});

// ---- clock skew (defect 1's uncapped wait is the case "behind by more than the bound") -------------------

describe('clock skew: one host clock off by ±2 s or by more than the pause bound', () => {
  for (const offsetMs of [2000, -2000, -(BOUND_MS + 5000), BOUND_MS + 5000]) {
    test(`host a clock ${offsetMs > 0 ? '+' : ''}${offsetMs / 1000} s`, { timeout: 180_000 }, async (t) => {
      const started = Date.now();
      bed.setHooks('a', { clockOffsetMs: offsetMs });
      const monitor = new PauseMonitor(bed, () => HOME);
      const id = `skew${offsetMs > 0 ? 'p' : 'm'}${Math.abs(offsetMs)}`;
      const workflowId = await startCheckpoint(bed, id);
      const outcome = await outcomeOf(bed, workflowId);
      // A host step may still be waiting out its skewed barrier: give it every chance to act late.
      await sleep(Math.max(0, started + Math.max(BOUND_MS, Math.abs(offsetMs)) + 7000 - Date.now()));
      const stuck = await notRunningAfter(2000);
      const maxPausedMs = await monitor.stop();
      assert.deepEqual(stuck, [], 'every VM runs after the checkpoint');
      assert.ok(maxPausedMs < BOUND_MS, `paused ${maxPausedMs} ms`);
      await assertStoreClean(bed, outcome === 'completed' ? [id] : []);
      bed.clearHooks();
      if (outcome === 'completed') await restoreAndVerify(bed, id);
      else assert.match(outcome, new RegExp(`failed: checkpoint ${id} of cluster ${CLUSTER} failed in \\w+: `));
      t.diagnostic(`${outcome.slice(0, 200)}; longest pause ${maxPausedMs} ms`);
      note(`clock ${offsetMs > 0 ? '+' : ''}${offsetMs / 1000} s`, outcome === 'completed' ? 'committed, restored' : 'failed cleanly', started, maxPausedMs, outcome);
    });
  }
});

// ---- defect 2: garbage collection outside the cluster lock -----------------------------------------------

test('defect 2: a checkpoint during a restart\'s garbage collection keeps its new disk layers', { timeout: 180_000 }, async (t) => {
  const started = Date.now();
  bed.setHooks('controller', { points: { 'gc:after-chain@heavy': { delayMs: 8000, once: true } } });
  const restart = await bed.vccr.restart(CLUSTER, { checkpointId: 'base', force: true, noWait: true });
  assert.ok('workflowId' in restart);
  await waitReached('controller', 'gc:after-chain', 120_000);
  // Refused by the client already when it sees the lock held, else by the workflow.
  const checkpoint = startCheckpoint(bed, 'during-gc').then(
    (workflowId) => outcomeOf(bed, workflowId),
    (err: unknown) => `refused: ${err instanceof Error ? err.message : String(err)}`,
  );
  const [restarted, checkpointed] = await Promise.all([outcomeOf(bed, restart.workflowId), checkpoint]);
  assert.equal(restarted, 'completed');
  assert.deepEqual(missingLayers(), [], 'no layer a chain or a manifest names was deleted');
  if (checkpointed === 'completed') await restoreAndVerify(bed, 'during-gc');
  else assert.match(checkpointed, /is busy: restart/);
  t.diagnostic(`checkpoint during GC: ${checkpointed.slice(0, 160)}`);
  note('checkpoint during garbage collection', checkpointed === 'completed' ? 'committed, restored' : 'refused (busy)', started, 0, checkpointed);
});

// ---- defect 3: garbage collection deletes what it cannot read ----------------------------------------------

describe('defect 3: garbage collection stops when it cannot read a checkpoint', () => {
  const damages: Array<[string, (manifest: string) => () => void]> = [
    [
      'a manifest written by a newer version',
      (path) => {
        const text = readFileSync(path, 'utf8');
        writeFileSync(path, text.replace('"version": 1', '"version": 2'));
        return () => writeFileSync(path, text);
      },
    ],
    [
      'a manifest that is not JSON',
      (path) => {
        const text = readFileSync(path, 'utf8');
        writeFileSync(path, text.slice(0, 40));
        return () => writeFileSync(path, text);
      },
    ],
    [
      'a store folder that cannot be listed (EIO)',
      () => {
        bed.setHooks('controller', { points: { 'gc:list-checkpoints': { action: 'fail', once: true } } });
        return () => bed.clearHooks();
      },
    ],
  ];
  damages.forEach(([what, damage], i) => {
    test(what, { timeout: 240_000 }, async (t) => {
      const started = Date.now();
      // A checkpoint whose frozen layers only its own manifest names (the running cluster moved on).
      const kept = `unread-${i}`;
      await bed.vccr.checkpoint(CLUSTER, { checkpointId: kept });
      await bed.vccr.restart(CLUSTER, { checkpointId: 'base', force: true });
      const { manifest } = await bed.vccr.checkpoints.show(CLUSTER, kept);
      const layers = manifest.vms.flatMap((vm) => vm.disks.map((d) => d.frozen));
      await bed.vccr.checkpoint(CLUSTER, { checkpointId: `throwaway-${i}` });
      const undo = damage(join(bed.store, CLUSTER, kept, 'manifest.json'));
      const deleted = await bed.vccr.checkpoints.delete(CLUSTER, `throwaway-${i}`);
      undo();
      assert.deepEqual(layers.filter((l) => !existsSync(l)), [], `the layers of ${kept} are kept`);
      assert.match(deleted.skipped ?? '', /garbage collection stopped/, 'the delete says why nothing was collected');
      assert.equal((await bed.vccr.checkpoints.verify(CLUSTER, kept)).ok, true);
      await bed.vccr.checkpoints.delete(CLUSTER, kept);
      t.diagnostic(`delete: ${deleted.skipped ?? 'collected'}`);
      note(`GC with ${what}`, 'GC stopped, nothing lost', started, 0, deleted.skipped ?? '');
    });
  });
});

// ---- defect 4: garbage collection follows symlinks -----------------------------------------------------------

describe('defect 4: garbage collection never leaves <store>/<cluster>/_disks', () => {
  test('symlinks under _disks are not followed', { timeout: 120_000 }, async () => {
    const started = Date.now();
    const outside = join(bed.dir, 'outside');
    mkdirSync(join(outside, 'disk'), { recursive: true });
    writeFileSync(join(outside, 'disk', 'victim.qcow2'), 'not yours');
    writeFileSync(join(outside, 'victim2.qcow2'), 'not yours either');
    const disks = join(bed.store, CLUSTER, '_disks');
    symlinkSync(outside, join(disks, 'evil'));
    symlinkSync(join(outside, 'victim2.qcow2'), join(disks, HEAVY.name, 'scratch', 'link.qcow2'));
    symlinkSync(join(outside, 'disk'), join(disks, HEAVY.name, 'linked'));
    try {
      await bed.vccr.checkpoint(CLUSTER, { checkpointId: 'symlinks' });
      await bed.vccr.checkpoints.delete(CLUSTER, 'symlinks');
      assert.ok(existsSync(join(outside, 'disk', 'victim.qcow2')), 'a file behind a linked folder survives');
      assert.ok(existsSync(join(outside, 'victim2.qcow2')), 'a file behind a linked layer survives');
    } finally {
      for (const link of [join(disks, 'evil'), join(disks, HEAVY.name, 'scratch', 'link.qcow2'), join(disks, HEAVY.name, 'linked')]) rmSync(link, { force: true });
    }
    note('symlinks under _disks', 'not followed', started);
  });

  test('a stray file under _disks does not make a delete fail', { timeout: 120_000 }, async () => {
    const started = Date.now();
    const stray = join(bed.store, CLUSTER, '_disks', HEAVY.name, 'notes.txt');
    writeFileSync(stray, 'an operator left this here');
    try {
      await bed.vccr.checkpoint(CLUSTER, { checkpointId: 'stray' });
      await bed.vccr.checkpoints.delete(CLUSTER, 'stray');
      assert.ok(!existsSync(join(bed.store, CLUSTER, 'stray')), 'the checkpoint is gone');
      assert.ok(existsSync(stray), 'the stray file is left alone');
    } finally {
      rmSync(stray, { force: true });
    }
    note('stray file under _disks', 'delete completed', started);
  });
});

// ---- defect 5: reused checkpoint ids ----------------------------------------------------------------------------

describe('defect 5: a checkpoint id is never reused', () => {
  /**
   * Starts a second checkpoint with an id already used, under another workflow id (as `temporal workflow
   * start` can). In between, as time would, another checkpoint runs and fails before freezing (a host
   * fault at freeze:before): no VM's pause lease names the id any more, and its top disk layer stays.
   */
  async function reuse(id: string): Promise<string> {
    for (const host of ['a', 'b']) bed.setHooks(host, { points: { 'freeze:before': { action: 'fail' } } });
    const between = await outcomeOf(bed, await startRaw(`${id}-between`, `${id}-between-${Date.now().toString(36)}`));
    bed.clearHooks();
    assert.match(between, /failed in capture/);
    assert.deepEqual(await notRunningAfter(BOUND_MS), []);
    const outcome = await outcomeOf(bed, await startRaw(id, `${id}-again-${Date.now().toString(36)}`));
    if (outcome === 'completed') {
      assert.fail(`the reused id ${id} was committed; restoring it: ${await restoreProblems(id)}`);
    }
    return outcome;
  }

  test('after a failed checkpoint of that id', { timeout: 180_000 }, async () => {
    const started = Date.now();
    bed.setHooks('a', { points: { 'save:before-migrate@journal': { delayMs: 2000, once: true } } });
    const first = await startCheckpoint(bed, 'reuse-failed');
    await waitReached('a', 'save:before-migrate');
    await cancel(first);
    assert.match(await outcomeOf(bed, first), /cancelled/);
    const outcome = await reuse('reuse-failed');
    assert.match(outcome, /checkpoint id reuse-failed was used before/);
    note('id of a failed checkpoint reused', 'refused', started, 0, outcome);
  });

  test('after a deleted checkpoint of that id', { timeout: 180_000 }, async () => {
    const started = Date.now();
    await bed.vccr.checkpoint(CLUSTER, { checkpointId: 'reuse-deleted' });
    await bed.vccr.checkpoints.delete(CLUSTER, 'reuse-deleted');
    const outcome = await reuse('reuse-deleted');
    assert.match(outcome, /checkpoint id reuse-deleted was used before/);
    note('id of a deleted checkpoint reused', 'refused', started, 0, outcome);
  });

  test('after a run of that id was terminated mid-save', { timeout: 180_000 }, async () => {
    const started = Date.now();
    bed.setHooks('a', { points: { 'save:before-migrate@journal': { delayMs: 4000, once: true } } });
    const first = await startCheckpoint(bed, 'reuse-terminated');
    await waitReached('a', 'save:before-migrate');
    const folder = join(bed.store, CLUSTER, 'reuse-terminated');
    while (!existsSync(join(folder, `${HEAVY.name}.state.json`))) await sleep(50);
    await (await bed.temporal()).workflow.getHandle(first).terminate('an operator terminated it');
    // The leases of the terminated run resume the VMs at the bound.
    assert.deepEqual(await notRunningAfter(BOUND_MS + 5000), []);
    const outcome = await reuse('reuse-terminated');
    assert.match(outcome, /checkpoint id reuse-terminated was used before/);
    note('id of a terminated run reused', 'refused', started, 0, outcome);
  });
});

// ---- defect 6: host workers validate every request ------------------------------------------------------------

test('defect 6: hostile requests sent straight to a host task queue are refused, nothing touched', { timeout: 180_000 }, async (t) => {
  const started = Date.now();
  const pids = Object.fromEntries(Object.entries(HOME).map(([vm, host]) => [vm, bed.vmRecord(host, CLUSTER, vm).pid]));
  const config = (JSON.parse(readFileSync(join(bed.hostStateDir('b'), CLUSTER, 'vm1', 'vm.json'), 'utf8')) as { config: Record<string, unknown> }).config;
  const calls: Array<[RawHostCall, RegExp]> = [
    [{ activity: 'inspectVms', input: { cluster: '../../etc', vms: ['passwd'] } }, /cluster/],
    [{ activity: 'pauseVms', input: { cluster: CLUSTER, checkpointId: 'h1', vms: ['vm1'], pauseBoundMs: 1e12 } }, /pauseBoundMs/],
    [{ activity: 'pauseVms', input: { cluster: CLUSTER, checkpointId: '../../h2', vms: ['vm1'], pauseBoundMs: 5000 } }, /checkpointId/],
    [{ activity: 'resumeVms', input: { cluster: CLUSTER, vms: 'vm1' } }, /vms/],
    [{ activity: 'freezeDisks', input: { cluster: CLUSTER, store: 'relative/store', checkpointId: 'h3', vms: [HEAVY.name] } }, /store/],
    [{ activity: 'verifyStateFiles', input: { files: [{ vm: 'x', file: '/etc/hostname', size: 1, sha256: '0'.repeat(64) }] } }, /files|store|cluster/],
    [{ activity: 'loadVmStates', input: { cluster: CLUSTER, checkpointId: 'h4', vms: [{ name: 'vm1', file: '/etc/shadow', size: 1, sha256: '0'.repeat(64) }], progressWorkflowId: 'x' } }, /file|store/],
    [{ activity: 'launchVms', input: { cluster: CLUSTER, store: bed.store, operationId: 'evil,x', vms: [{ ...config, name: 'evil' }] } }, /operationId/],
    [{ activity: 'launchVms', input: { cluster: CLUSTER, store: bed.store, operationId: 'evil', vms: [{ ...config, name: 'evil', nics: [{ id: 'n', tap: 'tap0,script=/bin/sh', mac: '52:54:00:00:00:01' }] }] } }, /tap/],
    [{ activity: 'launchVms', input: { cluster: CLUSTER, store: bed.store, operationId: 'evil', vms: [{ ...config, name: 'evil', netns: '../../proc/1/ns/net' }] } }, /netns/],
    [{ activity: 'ensureVmsGone', input: { cluster: CLUSTER, vms: ['vm1'], force: 'yes' } }, /force/],
    [{ activity: 'stopVms', input: { cluster: CLUSTER, vms: [HEAVY.name], mode: 'nuke' } }, /mode/],
  ];
  const connection = await NativeConnection.connect({ address: bed.server.address });
  let outcomes: string[];
  try {
    const worker = await Worker.create({ connection, taskQueue: 'races-hostile', workflowsPath: require.resolve('../helpers/host-requests-workflow') });
    outcomes = await worker.runUntil(
      (await bed.temporal()).workflow.execute('sendRawHostRequests', {
        taskQueue: 'races-hostile',
        workflowId: `hostile-${Date.now()}`,
        args: [{ taskQueue: hostTaskQueue('b'), calls: calls.map(([c]) => c) }],
      }) as Promise<string[]>,
    );
  } finally {
    await connection.close();
  }
  const wrong = calls
    .map(([call, field], i) => ({ call: call.activity, field, outcome: outcomes[i] ?? '' }))
    .filter((r) => !/^InvalidRequest: /.test(r.outcome) || !r.field.test(r.outcome))
    .map((r) => `${r.call} (${r.field.source}): ${r.outcome.slice(0, 160)}`);
  t.diagnostic(outcomes.map((o) => o.slice(0, 120)).join(' | '));
  const after = Object.fromEntries(
    Object.entries(HOME).map(([vm, host]) => {
      try {
        return [vm, bed.vmRecord(host, CLUSTER, vm).pid];
      } catch {
        return [vm, 'gone'];
      }
    }),
  );
  assert.deepEqual({ wrong, after }, { wrong: [], after: pids }, 'every hostile request is refused as InvalidRequest naming the field, and no VM was touched');
  assert.deepEqual(await notRunningAfter(0), []);
  note('hostile requests to a host queue', `${calls.length} refused`, started);
});

// ---- defect 7: save confirms the VM is paused ---------------------------------------------------------------

describe('defect 7: a VM resumed behind the protocol\'s back is never committed', () => {
  for (const point of ['freeze:before', 'save:before-migrate', 'save:after-migration']) {
    test(`cont by an operator at ${point}`, { timeout: 180_000 }, async (t) => {
      const started = Date.now();
      bed.setHooks('a', { points: { [`${point}@${JOURNAL.name}`]: { delayMs: 2500, once: true } } });
      const id = `cont-${point.replace(/\W+/g, '-')}`;
      const workflowId = await startCheckpoint(bed, id);
      await waitReached('a', point);
      await operatorCont(JOURNAL.name);
      const outcome = await outcomeOf(bed, workflowId);
      if (outcome === 'completed') assert.fail(`committed a checkpoint of a running VM; restoring it: ${await restoreProblems(id)}`);
      assert.match(outcome, new RegExp(`${JOURNAL.name}.*(not paused|running|ran)`));
      await assertStoreClean(bed, []);
      t.diagnostic(outcome.slice(0, 200));
      note(`operator cont at ${point}`, 'failed cleanly', started, 0, outcome);
    });
  }
});

// ---- defect 8: the smaller ones -------------------------------------------------------------------------------

describe('defect 8: smaller races', () => {
  test('a load retried after it finished (worker died before recording it) completes the restart', { timeout: 180_000 }, async () => {
    const started = Date.now();
    // vm1 waits after loading; heavy's worker dies 5 s after heavy loaded, with both loads complete.
    bed.setHooks('b', {
      points: {
        'load:before-record@vm1': { delayMs: 30_000, once: true },
        [`load:before-record@${HEAVY.name}`]: { action: 'crash', delayMs: 5000, once: true },
      },
    });
    const restart = await bed.vccr.restart(CLUSTER, { checkpointId: 'base', force: true, noWait: true });
    assert.ok('workflowId' in restart);
    const worker = bed.hostWorkers.get('b');
    const deadline = Date.now() + 120_000;
    while (worker?.alive && Date.now() < deadline) await sleep(100);
    assert.equal(worker?.alive, false, 'host b died after both loads');
    await bed.startHost('b');
    const outcome = await outcomeOf(bed, restart.workflowId);
    assert.equal(outcome, 'completed');
    const { manifest } = await bed.vccr.checkpoints.show(CLUSTER, 'base');
    await assertRingContinued(bed, CLUSTER, manifest, HOME, 5, ['vm0', 'vm1', 'vm2']);
    note('load retried after it finished', 'completed', started, 0, outcome);
  });

  test('two overlapping atomic writes of one file leave one whole version', { timeout: 60_000 }, async () => {
    const dir = await mkdtemp(join(bed.dir, 'atomic-'));
    const path = join(dir, 'record.json');
    const big = 'b'.repeat(1 << 20);
    for (let i = 0; i < 20; i++) {
      const results = await Promise.allSettled([writeFileAtomic(path, big), writeFileAtomic(path, `small-${i}`)]);
      assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled'], `round ${i}: ${results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok')).join(', ')}`);
      const text = readFileSync(path, 'utf8');
      assert.ok(text === big || text === `small-${i}`, `round ${i}: the file is one of the two versions (${text.length} bytes)`);
    }
    assert.deepEqual(readdirSync(dir), ['record.json'], 'no temp file left');
  });

  test('a new checkpoint folder is made durable: its parent is fsynced after the mkdir', { timeout: 120_000 }, async () => {
    const trace = await traceController(async () => {
      await bed.vccr.checkpoint(CLUSTER, { checkpointId: 'durable-mkdir' });
    });
    const clusterDir = join(bed.store, CLUSTER);
    const mkdirAt = trace.findIndex((c) => c.call === 'mkdir' && c.path === join(clusterDir, 'durable-mkdir'));
    assert.ok(mkdirAt >= 0, 'the checkpoint folder was created');
    assert.ok(trace.slice(mkdirAt).some((c) => c.call === 'fsync' && c.path === clusterDir), 'the cluster folder was fsynced after it');
  });

  test('an aborted checkpoint loses its manifest before anything else', { timeout: 180_000 }, async () => {
    const started = Date.now();
    // The commit is written, then the pause bound runs out while the commit activity lingers: the undo
    // path must treat the folder as committed-and-being-removed.
    bed.setHooks('controller', { points: { 'commit:after-write': { delayMs: BOUND_MS + 2000, once: true } } });
    let outcome = '';
    const trace = await traceController(async () => {
      outcome = await outcomeOf(bed, await startCheckpoint(bed, 'aborted-after-commit'));
    });
    const folder = join(bed.store, CLUSTER, 'aborted-after-commit');
    // The folder's own files (not the begin's write probe or temp files, whose names start with a dot).
    const unlinks = trace
      .filter((c) => c.call === 'unlink' && c.path.startsWith(`${folder}/`) && !c.path.slice(folder.length + 1).startsWith('.'))
      .map((c) => c.path.slice(folder.length + 1));
    const manifestAt = unlinks.indexOf('manifest.json');
    assert.ok(!existsSync(join(folder, 'manifest.json')) || existsSync(join(folder, `${HEAVY.name}.state`)), 'never a manifest without its files');
    assert.equal(manifestAt, 0, `the manifest goes first (unlinked: ${unlinks.join(', ')})`);
    const manifestIndex = trace.findIndex((c) => c.call === 'unlink' && c.path === join(folder, 'manifest.json'));
    const nextUnlink = trace.findIndex((c, i) => i > manifestIndex && c.call === 'unlink' && c.path.startsWith(`${folder}/`) && !c.path.includes('/.'));
    assert.ok(trace.slice(manifestIndex, nextUnlink).some((c) => c.call === 'fsync' && c.path === folder), 'and its removal is made durable before the rest goes');
    note('abort after the manifest was written', outcome.startsWith('failed') ? 'failed cleanly' : outcome, started, 0, outcome);
  });
});

interface TracedCall {
  call: 'mkdir' | 'fsync' | 'unlink';
  path: string;
}

/** Runs `during` while strace records the controller worker's mkdir, fsync and unlink calls (with paths). */
async function traceController(during: () => Promise<void>): Promise<TracedCall[]> {
  const controller = bed.controllers.at(-1);
  assert.ok(controller?.alive);
  const out = join(bed.dir, `strace-${Date.now()}.txt`);
  const strace = spawn('strace', ['-f', '-qq', '-y', '-e', 'trace=mkdir,mkdirat,fsync,fdatasync,unlink,unlinkat', '-o', out, '-p', String(controller.id.pid)], { stdio: 'ignore' });
  await sleep(1000); // attached to every thread
  try {
    await during();
  } finally {
    strace.kill('SIGINT');
    await new Promise((resolve) => strace.once('exit', resolve));
  }
  const calls: TracedCall[] = [];
  // Concurrent calls are split by strace into "<unfinished ...>" and "<... resumed>" lines: take the call
  // where it starts, unless that line already shows it failed.
  for (const line of readFileSync(out, 'utf8').split('\n')) {
    if (/= -1 /.test(line)) continue;
    let m = /\bmkdir(?:at)?\((?:AT_FDCWD(?:<[^>]*>)?, )?"([^"]+)"/.exec(line);
    if (m?.[1]) calls.push({ call: 'mkdir', path: m[1] });
    m = /\bf(?:data)?sync\(\d+<([^>]+)>/.exec(line);
    if (m?.[1]) calls.push({ call: 'fsync', path: m[1] });
    m = /\bunlink(?:at)?\((?:AT_FDCWD(?:<[^>]*>)?, )?"([^"]+)"/.exec(line);
    if (m?.[1]) calls.push({ call: 'unlink', path: m[1] });
  }
  rmSync(out, { force: true });
  return calls;
}

// ---- ordering chaos ------------------------------------------------------------------------------------------

// ---- the store barrier: hosts resume on the other hosts' marks, never before every VM is paused ---------

describe('store barrier: hosts resume on the marks of the others (checkpoint and restart)', () => {
  /** Every VM's resume (QEMU's RESUME) comes after every VM's pause (QEMU's STOP): the cut held. */
  function assertCutHeld(result: { vms: Array<{ name: string; pausedAt: number; resumedAt?: number }> }): { lastPause: number; firstResume: number; lastResume: number } {
    const lastPause = Math.max(...result.vms.map((v) => v.pausedAt));
    const resumes = result.vms.map((v) => v.resumedAt ?? Number.NaN);
    assert.ok(resumes.every(Number.isFinite), 'every VM was resumed');
    const firstResume = Math.min(...resumes);
    assert.ok(firstResume >= lastPause, `no VM resumed (first at ${firstResume}) before the last one paused (${lastPause})`);
    return { lastPause, firstResume, lastResume: Math.max(...resumes) };
  }

  test('the hosts resume their saved VMs without waiting for finishSaves', { timeout: 180_000 }, async (t) => {
    const started = Date.now();
    const delayMs = 4000;
    for (const host of ['a', 'b']) bed.setHooks(host, { points: { 'step:finishSaves': { delayMs } } });
    const result = await bed.vccr.checkpoint(CLUSTER, { checkpointId: 'store-barrier' });
    bed.clearHooks();
    assert.ok('vms' in result, 'the checkpoint committed');
    const { lastPause, lastResume } = assertCutHeld(result);
    t.diagnostic(`downtime ${result.downtimeMs} ms with finishSaves held back ${delayMs} ms`);
    assert.ok(lastResume - lastPause < delayMs, `every VM ran again ${lastResume - lastPause} ms after the last pause, before finishSaves (${delayMs} ms)`);
    await restoreAndVerify(bed, 'store-barrier');
    note('store barrier: finishSaves late', 'committed, restored', started, result.downtimeMs, `downtime ${result.downtimeMs} ms`);
  });

  test("a host that pauses late holds the other host's resumes until its VMs are paused", { timeout: 180_000 }, async (t) => {
    const started = Date.now();
    bed.setHooks('b', { points: { 'pause:before-stop@vm1': { delayMs: 1500, once: true } } });
    const result = await bed.vccr.checkpoint(CLUSTER, { checkpointId: 'store-barrier-late' });
    bed.clearHooks();
    assert.ok('vms' in result, 'the checkpoint committed');
    const { lastPause, firstResume } = assertCutHeld(result);
    const vm1 = result.vms.find((v) => v.name === 'vm1');
    assert.equal(vm1?.pausedAt, lastPause, 'vm1 paused last');
    t.diagnostic(`vm1 paused ${lastPause - Math.min(...result.vms.map((v) => v.pausedAt))} ms after the first VM; first resume ${firstResume - lastPause} ms after it`);
    await restoreAndVerify(bed, 'store-barrier-late');
    note('store barrier: one host pauses late', 'committed, restored', started, result.downtimeMs, `downtime ${result.downtimeMs} ms`);
  });

  test('a restart: the hosts resume once every VM has loaded, without waiting for the resume step', { timeout: 180_000 }, async (t) => {
    const started = Date.now();
    const delayMs = 4000;
    for (const host of ['a', 'b']) bed.setHooks(host, { points: { 'step:resumeVms': { delayMs } } });
    const result = await bed.vccr.restart(CLUSTER, { checkpointId: 'base', force: true });
    bed.clearHooks();
    assert.ok('vms' in result, 'the restart completed');
    const lastLoad = Math.max(...result.vms.map((v) => v.loadedAt));
    const resumes = result.vms.map((v) => v.resumedAt);
    assert.ok(Math.min(...resumes) >= lastLoad, `no VM resumed (first at ${Math.min(...resumes)}) before the last one loaded (${lastLoad})`);
    const after = Math.max(...resumes) - lastLoad;
    t.diagnostic(`restore ${result.restoreMs} ms; every VM ran ${after} ms after the last load (the resume step held back ${delayMs} ms)`);
    assert.ok(after < delayMs, `every VM ran again ${after} ms after the last load, before the resume step (${delayMs} ms)`);
    await assertContinuedFrom(bed, 'base');
    note('store barrier: restart, resume step late', 'restored', started, 0, `restore ${result.restoreMs} ms`);
  });
});

test(`ordering chaos: random 0-1 s delays before every step of one host (${CHAOS_RUNS} runs)`, { timeout: CHAOS_RUNS * 150_000 }, async (t) => {
  for (let run = 1; run <= CHAOS_RUNS; run++) {
    const started = Date.now();
    const host = Math.random() < 0.5 ? 'a' : 'b';
    bed.setHooks(host, { chaosMaxMs: 1000 });
    const monitor = new PauseMonitor(bed, () => HOME);
    const id = `chaos-${run}-${Date.now().toString(36)}`;
    const outcome = await outcomeOf(bed, await startCheckpoint(bed, id));
    bed.clearHooks();
    const stuck = await notRunningAfter(5000);
    const maxPausedMs = await monitor.stop();
    assert.deepEqual(stuck, [], 'every VM runs');
    assert.ok(maxPausedMs < BOUND_MS, `paused ${maxPausedMs} ms`);
    await assertStoreClean(bed, outcome === 'completed' ? [id] : []);
    if (outcome === 'completed') await restoreAndVerify(bed, id);
    else assert.match(outcome, new RegExp(`failed: checkpoint ${id} of cluster ${CLUSTER} failed in \\w+: `));
    await assertClusterHealthy(bed);
    t.diagnostic(`run ${run}: host ${host} → ${outcome.slice(0, 160)}; longest pause ${maxPausedMs} ms`);
    report({ suite: 'races', case: 'ordering chaos', run, outcome: outcome === 'completed' ? 'committed, restored' : 'failed cleanly', maxPausedMs, ms: Date.now() - started, detail: `host ${host}: ${outcome}`, ok: true, asked: CHAOS_RUNS });
  }
});

// ---- negative controls: the journal and memfill detectors catch a bad restore ------------------------------

/** A checkpoint folder made by hand from `source`: state files hard-linked, the manifest changed by `edit`. */
async function craftCheckpoint(source: string, id: string, edit: (m: Manifest, dir: string) => Manifest): Promise<void> {
  const { manifest } = await bed.vccr.checkpoints.show(CLUSTER, source);
  const dir = join(bed.store, CLUSTER, id);
  mkdirSync(dir, { mode: 0o700 });
  for (const vm of manifest.vms) linkSync(join(bed.store, CLUSTER, source, vm.state.file), join(dir, vm.state.file));
  const crafted = edit({ ...manifest, checkpointId: id, workflowId: 'crafted-by-hand', runId: 'crafted' }, dir);
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(crafted), { mode: 0o600 });
}

async function waitForDetector(vm: string, id: string, pattern: RegExp): Promise<string> {
  const deadline = Date.now() + 60_000;
  const path = bed.consoleLog(HOME[vm] ?? '', CLUSTER, vm);
  for (;;) {
    const text = sinceLastRestore(path, id);
    const m = pattern.exec(text);
    if (m) return m[0];
    if (Date.now() > deadline) return `nothing detected; last lines: ${text.split('\n').slice(-3).join(' | ')}`;
    await sleep(200);
  }
}

describe('negative controls: a bad restore is caught', () => {
  test('memory of one checkpoint with the disk of an earlier one: the journal reports it', { timeout: 240_000 }, async (t) => {
    const started = Date.now();
    await bed.vccr.checkpoint(CLUSTER, { checkpointId: 'neg-disk-1' });
    await sleep(3000); // the journal writes ~30 more records
    await bed.vccr.checkpoint(CLUSTER, { checkpointId: 'neg-disk-2' });
    const older = (await bed.vccr.checkpoints.show(CLUSTER, 'neg-disk-1')).manifest;
    await craftCheckpoint('neg-disk-2', 'neg-mixed', (m) => ({
      ...m,
      vms: m.vms.map((vm) => (vm.name === JOURNAL.name ? { ...vm, disks: older.vms.find((o) => o.name === JOURNAL.name)?.disks ?? [] } : vm)),
    }));
    await bed.vccr.restart(CLUSTER, { checkpointId: 'neg-mixed', force: true });
    const detected = await waitForDetector(JOURNAL.name, 'neg-mixed', /^JOURNAL ERROR reason=disk-behind-memory.*$/m);
    t.diagnostic(detected);
    assert.match(detected, /disk-behind-memory/);
    note('negative control: memory of one checkpoint, disk of an earlier one', 'detected', started, 0, detected);
  });

  test('a memfill page flipped in the saved state: memfill reports it', { timeout: 240_000 }, async (t) => {
    const started = Date.now();
    await bed.vccr.checkpoint(CLUSTER, { checkpointId: 'neg-page' });
    const { manifest } = await bed.vccr.checkpoints.show(CLUSTER, 'neg-page');
    const heavy = manifest.vms.find((vm) => vm.name === HEAVY.name);
    assert.ok(heavy?.console);
    const state = readFileSync(join(bed.store, CLUSTER, 'neg-page', heavy.state.file));
    const lastAlive = memfillAlive(consoleAtPause(heavy).text).at(-1) ?? 0;
    const copies = locateSoonCheckedPage(state, lastAlive);
    assert.ok(copies.length > 0, 'found a page memfill will check within seconds in the state file');
    // The same guest page may be in the stream more than once (the last copy wins on load): flip each.
    for (const at of copies) state[at + 100] = (state[at + 100] ?? 0) ^ 0x40;
    t.diagnostic(`memfill at n=${lastAlive}; page flipped at ${copies.length} place(s) in the state file`);
    await craftCheckpoint('neg-page', 'neg-flipped', (m, dir) => {
      rmSync(join(dir, heavy.state.file));
      writeFileSync(join(dir, heavy.state.file), state, { mode: 0o600 });
      const sha256 = createHash('sha256').update(state).digest('hex');
      return { ...m, vms: m.vms.map((vm) => (vm.name === HEAVY.name ? { ...vm, state: { ...vm.state, sha256 } } : vm)) };
    });
    await bed.vccr.restart(CLUSTER, { checkpointId: 'neg-flipped', force: true });
    const detected = await waitForDetector(HEAVY.name, 'neg-flipped', /^MEMFILL ERROR reason=corrupt.*$/m);
    t.diagnostic(detected);
    assert.match(detected, /MEMFILL ERROR reason=corrupt/);
    note('negative control: one memfill page flipped in the state file', 'detected', started, 0, detected);
  });
});

// memfill (guest/memfill.c): page p at generation g holds splitmix64 words of seed ^ p*golden ^ g<<40, each
// with bit 0 set; pages are checked in the order of a splitmix64 stream seeded with seed ^ 0x5DEECE66D.
const MASK = (1n << 64n) - 1n;
function splitmix(state: { s: bigint }): bigint {
  state.s = (state.s + 0x9e3779b97f4a7c15n) & MASK;
  let z = state.s;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK;
  return z ^ (z >> 31n);
}

/** memfill's content of page `page` at generation `gen`. */
function memfillPage(page: bigint, gen: number, seed = 1n): Buffer {
  const st = { s: seed ^ ((page * 0x9e3779b97f4a7c15n) & MASK) ^ (BigInt(gen) << 40n) };
  const buf = Buffer.alloc(4096);
  for (let i = 0; i < 512; i++) buf.writeBigUInt64LE(splitmix(st) | 1n, i * 8);
  return buf;
}

/**
 * Offsets in `state` of a memfill page that memfill checks 100-400 picks after `lastAlive` (none if not
 * found). Whole pages are compared: a page's words reappear shifted inside its neighbours' pages.
 */
function locateSoonCheckedPage(state: Buffer, lastAlive: number): number[] {
  const pages = BigInt(96 * 256);
  const pick = { s: 1n ^ 0x5deece66dn };
  const generation = new Map<bigint, number>();
  const soon: Array<{ page: bigint; gens: number[] }> = [];
  for (let i = 0; i < lastAlive + 400; i++) {
    const page = splitmix(pick) % pages;
    const g = generation.get(page) ?? 0;
    if (i >= lastAlive + 100) soon.push({ page, gens: [...Array(g + 1).keys()] });
    if (i < lastAlive + 100) generation.set(page, g + 1);
  }
  for (const { page, gens } of soon.slice(0, 30)) {
    for (const g of gens.reverse()) {
      const content = memfillPage(page, g);
      const found: number[] = [];
      const prefix = content.subarray(0, 16);
      for (let at = state.indexOf(prefix); at >= 0; at = state.indexOf(prefix, at + 1)) {
        if (state.subarray(at, at + content.length).equals(content)) found.push(at);
      }
      if (found.length) return found;
    }
  }
  return [];
}
