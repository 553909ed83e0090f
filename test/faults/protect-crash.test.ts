// Fault cases of continuous protection: the controller worker is SIGKILLed during a scheduled run's
// checkpoint, during its retention, during its disk-layer merge, and during an automatic recovery —
// at the start of the phase or at a random moment inside it — and started again after a random delay.
// Every time: the run (or the recovery) finishes; every kept checkpoint verifies and its frozen disk holds
// its journal; the store holds nothing retention should have removed and no disk layer nobody needs; the
// disk chain stays bounded; the lock is free; every VM runs and no detector complains; and outside the
// recovery case the watch never acts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { TestBed } from '../../harness/testbed';
import { readConsole } from '../../harness/console';
import { sleep } from '../../node/proc';
import { progressQuery } from '../../common/messages';
import { protectScheduleId } from '../../common/ids';
import { toVccrError } from '../../client/errors';
import { assertRingContinued } from '../helpers/ring-check';
import {
  JOURNAL_VM,
  RING_VMS,
  assertJournalContinued,
  assertRingAlive,
  headerChain,
  journalAtCheckpoint,
  journalErrors,
  protectSpec,
  runningChain,
  verifyJournalDisk,
  waitUntilRunning,
} from '../helpers/protect-bed';
import { PauseMonitor, RUNS, random, report } from './fault-bed';

const CLUSTER = 'pf';
const KEEP = 2;
/** protectSpec's pause bound. */
const PAUSE_BOUND_MS = 30_000;
const HOME = Object.fromEntries([...RING_VMS, JOURNAL_VM].map((v) => [v.name, v.host]));
const RUN_PHASES = ['check', 'checkpoint', 'verify', 'retention', 'merge', 'collect', 'done'];
/** Typical phase lengths here, for picking a moment inside a phase. */
const TYPICAL_MS: Record<string, number> = { checkpoint: 2500, retention: 150, merge: 300, recovering: 1000 };
let bed: TestBed;

before(async () => {
  bed = await TestBed.start({ hosts: ['a', 'b'], taps: 2, testHooks: true });
  await bed.vccr.up(protectSpec(bed, CLUSTER));
  await waitUntilRunning(bed, CLUSTER, HOME);
  // Runs are started by hand (`--now`), one per fault; the watch looks every 2 s.
  await bed.vccr.protection.protect(CLUSTER, { everyMs: 3_600_000, retention: { keepLast: KEEP }, watch: { checkEverySeconds: 2, graceSeconds: 10, maxRecoveriesPerHour: 100, backoffSeconds: 1 } });
});

after(async () => {
  await bed?.vccr.protection.off(CLUSTER).catch(() => undefined);
  await bed?.stop();
});

async function placement(): Promise<Record<string, string>> {
  return (await bed.vccr.clusterState(CLUSTER))?.placement ?? HOME;
}

/** Starts a scheduled run now; returns its workflow id. */
async function triggerRun(): Promise<string> {
  await bed.vccr.protection.trigger(CLUSTER);
  const client = await bed.temporal();
  for (let i = 0; i < 400; i++) {
    const running = (await client.schedule.getHandle(protectScheduleId(CLUSTER)).describe()).info.runningActions[0];
    if (running) return running.workflow.workflowId;
    await sleep(50);
  }
  return assert.fail('the triggered run did not start');
}

/** Kills the controller, waits 0–1.5 s, starts a new one. */
async function crashController(): Promise<void> {
  const controller = bed.controllers.at(-1);
  assert.ok(controller);
  await controller.kill();
  await sleep(random(0, 1500));
  await bed.startController();
}

async function waitForRunPhase(workflowId: string, phase: string): Promise<string> {
  const handle = (await bed.temporal()).workflow.getHandle(workflowId);
  let seen = 'starting';
  for (let i = 0; i < 6000; i++) {
    const p = await handle.query(progressQuery).catch(() => undefined);
    if (p) seen = p.phase;
    if (RUN_PHASES.indexOf(seen) >= RUN_PHASES.indexOf(phase)) return seen;
    await sleep(5);
  }
  return seen;
}

/** The end state every run must reach. */
async function assertProtectedState(where: Record<string, string>): Promise<void> {
  assert.equal((await bed.vccr.clusterState(CLUSTER))?.lock, undefined, 'the cluster lock is free');
  const list = await bed.vccr.checkpoints.list(CLUSTER);
  assert.ok(list.committed.length >= 1 && list.committed.length <= KEEP, `${list.committed.length} committed checkpoints (keep ${KEEP})`);
  const dir = join(bed.store, CLUSTER);
  for (const entry of readdirSync(dir).filter((e) => !e.startsWith('_'))) {
    assert.ok(list.committed.some((c) => c.checkpointId === entry), `checkpoint folder ${entry} is a kept, committed checkpoint`);
    assert.deepEqual(readdirSync(join(dir, entry)).filter((f) => f.endsWith('.partial') || f.startsWith('.')), [], `no partial files in ${entry}`);
  }
  const running = runningChain(bed.store, CLUSTER, JOURNAL_VM.name, 'data');
  assert.ok(running.length <= KEEP + 2, `running disk chain of ${running.length} layers`);
  const needed = new Set([...headerChain(running[0] ?? '')]);
  for (const c of list.committed) {
    assert.equal((await bed.vccr.checkpoints.verify(CLUSTER, c.checkpointId)).ok, true, `${c.checkpointId} verifies`);
    const { manifest } = await bed.vccr.checkpoints.show(CLUSTER, c.checkpointId);
    const frozen = manifest.vms.find((v) => v.name === JOURNAL_VM.name)?.disks[0]?.frozen ?? '';
    for (const layer of headerChain(frozen)) needed.add(layer);
    const disk = verifyJournalDisk(bed, frozen);
    const at = journalAtCheckpoint(manifest, JOURNAL_VM.name);
    assert.ok(disk.ok && (disk.records === at + 1 || disk.records === at + 2), `${c.checkpointId}: frozen disk holds its journal (${disk.records} records, ${at} reported): ${disk.output}`);
  }
  const diskDir = join(bed.store, CLUSTER, '_disks', JOURNAL_VM.name, 'data');
  const layers = readdirSync(diskDir).filter((f) => f.endsWith('.qcow2')).map((f) => join(diskDir, f));
  assert.deepEqual(layers.sort(), [...needed].filter((l) => l.startsWith(diskDir)).sort(), 'no disk layer nobody needs');
  const status = await bed.vccr.status(CLUSTER);
  assert.ok(status.vms.every((v) => v.alive && v.qmpStatus === 'running'), `every VM runs: ${status.vms.map((v) => `${v.name}:${v.qmpStatus ?? 'dead'}`).join(' ')}`);
  await assertRingAlive(bed, CLUSTER, where);
  const journal = bed.consoleLog(where[JOURNAL_VM.name] ?? JOURNAL_VM.host, CLUSTER, JOURNAL_VM.name);
  const text = readConsole(journal);
  assert.deepEqual(journalErrors(text.slice(text.lastIndexOf('=== vccr:'))), [], 'the journal reports no error');
}

async function watchRecoveries(): Promise<number> {
  return (await bed.vccr.protection.watchState(CLUSTER))?.recoveries.length ?? 0;
}

describe('controller worker killed during a scheduled run', () => {
  for (const phase of ['checkpoint', 'retention', 'merge']) {
    test(`in ${phase}`, { timeout: RUNS * 180_000 }, async (t) => {
      for (let run = 1; run <= RUNS; run++) {
        const inside = run % 2 === 0;
        const started = Date.now();
        const where = await placement();
        const recoveries = await watchRecoveries();
        const monitor = new PauseMonitor(bed, () => where, CLUSTER);
        const workflowId = await triggerRun();
        const seen = await waitForRunPhase(workflowId, phase);
        if (inside) await sleep(random(0, TYPICAL_MS[phase] ?? 200));
        await crashController();
        let outcome = 'completed';
        try {
          await (await bed.temporal()).workflow.getHandle(workflowId).result();
        } catch (err) {
          outcome = `failed: ${toVccrError(err).message}`;
        }
        const maxPausedMs = await monitor.stop();
        assert.equal(outcome, 'completed', 'the scheduled run finishes');
        assert.ok(maxPausedMs < PAUSE_BOUND_MS, `no VM paused as long as the bound (${maxPausedMs} ms)`);
        await assertProtectedState(where);
        assert.equal(await watchRecoveries(), recoveries, 'the watch did not act');
        const detail = `killed ${inside ? 'inside' : 'at the start of'} ${phase} (run was in ${seen})`;
        t.diagnostic(`run ${run}: ${detail} → ${outcome}; longest pause ${maxPausedMs} ms; ${Date.now() - started} ms`);
        report({ suite: 'protect-crash', case: `scheduled run/${phase}`, run, outcome, maxPausedMs, ms: Date.now() - started, detail, ok: true });
      }
    });
  }
});

describe('host worker killed during a merge', () => {
  test(`host ${JOURNAL_VM.host} (the disk VM's) killed in merge, back within the grace period`, { timeout: RUNS * 180_000 }, async (t) => {
    for (let run = 1; run <= RUNS; run++) {
      const inside = run % 2 === 0;
      const started = Date.now();
      const where = await placement();
      const host = where[JOURNAL_VM.name] ?? JOURNAL_VM.host;
      const recoveries = await watchRecoveries();
      const workflowId = await triggerRun();
      const seen = await waitForRunPhase(workflowId, 'merge');
      if (inside) await sleep(random(0, TYPICAL_MS.merge ?? 300));
      await bed.hostWorkers.get(host)?.kill();
      await sleep(random(0, 1500));
      await bed.startHost(host);
      await (await bed.temporal()).workflow.getHandle(workflowId).result();
      await assertProtectedState(where);
      assert.equal(await watchRecoveries(), recoveries, 'the watch did not act (the worker was back within the grace period)');
      const detail = `host worker ${host} killed ${inside ? 'inside' : 'at the start of'} merge (run was in ${seen}), restarted`;
      t.diagnostic(`run ${run}: ${detail} → completed; ${Date.now() - started} ms`);
      report({ suite: 'protect-crash', case: 'merge, host worker killed', run, outcome: 'completed', maxPausedMs: 0, ms: Date.now() - started, detail, ok: true });
    }
  });
});

describe('controller worker killed during an automatic recovery', () => {
  test('recovery of a killed QEMU', { timeout: RUNS * 240_000 }, async (t) => {
    for (let run = 1; run <= RUNS; run++) {
      const started = Date.now();
      const where = await placement();
      const recoveries = await watchRecoveries();
      // The recovery's load step is held open for 2 s on every host, so the controller crash below (0–1 s
      // into the recovery) always lands inside it, however fast the rest of the recovery is.
      for (const host of ['a', 'b']) bed.setHooks(host, { points: { 'step:loadVmStates': { delayMs: 2000 } } });
      process.kill(bed.vmRecord(where[JOURNAL_VM.name] ?? '', CLUSTER, JOURNAL_VM.name).pid, 'SIGKILL');
      for (let i = 0; i < 2400 && (await bed.vccr.protection.watchState(CLUSTER))?.phase !== 'recovering'; i++) await sleep(50);
      await sleep(random(0, TYPICAL_MS.recovering ?? 1000));
      const killedAt = Date.now();
      await crashController();
      let state = await bed.vccr.protection.watchState(CLUSTER);
      for (let i = 0; i < 1200 && !(state && state.recoveries.length > recoveries && state.phase === 'watching'); i++) {
        await sleep(250);
        state = await bed.vccr.protection.watchState(CLUSTER);
      }
      for (const host of ['a', 'b']) bed.setHooks(host, {});
      const last = state?.recoveries.at(-1);
      assert.equal(last?.outcome, 'completed', `the recovery finished: ${last?.detail ?? state?.reason}`);
      assert.ok(last?.checkpointId);
      const { manifest } = await bed.vccr.checkpoints.show(CLUSTER, last.checkpointId);
      await assertRingContinued(bed, CLUSTER, manifest, where, 5, RING_VMS.map((v) => v.name));
      await assertJournalContinued(bed.consoleLog(where[JOURNAL_VM.name] ?? '', CLUSTER, JOURNAL_VM.name), manifest, JOURNAL_VM.name, 10);
      const status = await bed.vccr.status(CLUSTER);
      assert.ok(status.vms.every((v) => v.alive && v.qmpStatus === 'running'), 'every VM runs');
      assert.equal(state?.recoveries.length, recoveries + 1, 'exactly one recovery');
      assert.ok(killedAt < last.endedAt, 'the controller died before the recovery had finished');
      const detail = `QEMU of ${JOURNAL_VM.name} killed; controller killed ${killedAt - last.startedAt} ms into the recovery`;
      t.diagnostic(`run ${run}: ${detail} → recovered from ${last.checkpointId} in ${last.endedAt - last.startedAt} ms; ${Date.now() - started} ms`);
      report({ suite: 'protect-crash', case: 'automatic recovery', run, outcome: 'recovered', maxPausedMs: 0, ms: Date.now() - started, detail, ok: true });
    }
  });
});
