// Continuous protection, the schedule side: a real Temporal Schedule takes 30 checkpoints of a running
// cluster (a token ring and a VM writing a self-checking journal to its disk) with --keep-last 3. Then at
// most 3 committed checkpoints remain, every disk chain is ≤ 5 layers, the store holds only what they need,
// and each remaining checkpoint verifies, its frozen disk holds exactly its journal, and it restores with
// every detector confirming. And: a schedule whose interval is shorter than a checkpoint never runs two at once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestBed } from '../harness/testbed';
import { temporalCliPath } from '../harness/dev-server';
import { sleep } from '../node/proc';
import { protectScheduleId } from '../common/ids';
import type { Manifest } from '../common/manifest';
import { assertRingContinued } from './helpers/ring-check';
import {
  JOURNAL_VM,
  RING_VMS,
  assertJournalContinued,
  headerChain,
  journalAtCheckpoint,
  protectSpec,
  runningChain,
  verifyJournalDisk,
  waitUntilRunning,
} from './helpers/protect-bed';

const CLUSTER = 'prot';
const RUNS = Number(process.env.VCCR_PROTECT_RUNS ?? 30);
const HOME = Object.fromEntries([...RING_VMS, JOURNAL_VM].map((v) => [v.name, v.host]));
let bed: TestBed;

before(async () => {
  bed = await TestBed.start({ hosts: ['a', 'b'], taps: 2 });
  await bed.vccr.up(protectSpec(bed, CLUSTER));
  await waitUntilRunning(bed, CLUSTER, HOME);
});

after(async () => {
  await bed?.vccr.protection.off(CLUSTER).catch(() => undefined);
  await bed?.stop();
});

/** Scheduled runs of the cluster's protection, with when they ran and how they ended. */
async function protectRuns(): Promise<Array<{ workflowId: string; start: number; end: number; status: string }>> {
  const client = await bed.temporal();
  const runs = [];
  for await (const wf of client.workflow.list({ query: `WorkflowType = 'protectCluster' AND VccrCluster = '${CLUSTER}'` })) {
    runs.push({ workflowId: wf.workflowId, start: wf.startTime.getTime(), end: wf.closeTime?.getTime() ?? Number.POSITIVE_INFINITY, status: wf.status.name });
  }
  return runs.sort((a, b) => a.start - b.start);
}

async function waitForRuns(count: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let done = 0;
  while (Date.now() < deadline) {
    done = (await protectRuns()).filter((r) => r.status !== 'RUNNING').length;
    if (done >= count) return;
    await sleep(2000);
  }
  assert.fail(`only ${done} of ${count} scheduled runs finished in time`);
}

/** Stops the schedule and waits until no scheduled run is still going. */
async function quiesce(): Promise<void> {
  await bed.vccr.protection.pause(CLUSTER);
  for (let i = 0; i < 300 && (await protectRuns()).some((r) => r.status === 'RUNNING'); i++) await sleep(500);
}

test(`${RUNS} scheduled checkpoints with --keep-last 3: bounded store and chains, every remaining checkpoint restores`, { timeout: 1_200_000 }, async (t) => {
  const started = Date.now();
  const status = await bed.vccr.protection.protect(CLUSTER, { everyMs: 3000, jitterMs: 0, retention: { keepLast: 3 }, watch: { checkEverySeconds: 10 } });
  assert.equal(status.schedule?.everyMs, 3000);
  assert.equal(status.watch?.cluster, CLUSTER);
  await waitForRuns(RUNS, 900_000);
  await quiesce();
  const runs = await protectRuns();
  t.diagnostic(`${runs.length} scheduled runs in ${Math.round((Date.now() - started) / 1000)} s`);
  assert.deepEqual(runs.filter((r) => r.status !== 'COMPLETED').map((r) => `${r.workflowId}: ${r.status}`), [], 'every scheduled run completed');

  // What the user sees: the CLI and the Temporal CLI both show the schedule.
  const cli = execFileSync(process.execPath, [join(__dirname, '..', 'client', 'cli.js'), 'protect', CLUSTER, '--address', bed.server.address], { encoding: 'utf8' });
  assert.match(cli, /every 3s .*keep last 3/);
  assert.match(cli, /PAUSED/);
  assert.match(cli, /recent runs:[\s\S]*COMPLETED\s+checkpoint ck-\S+ verified; kept 3, deleted 1/);
  assert.match(cli, /watch: WATCHING/);
  const listed = execFileSync(temporalCliPath(), ['schedule', 'list', '--address', bed.server.address], { encoding: 'utf8' });
  assert.match(listed, new RegExp(protectScheduleId(CLUSTER)));

  const list = await bed.vccr.checkpoints.list(CLUSTER);
  assert.equal(list.committed.length, 3, 'keep-last 3 leaves 3 committed checkpoints');
  const manifests: Manifest[] = [];
  for (const c of list.committed) manifests.push((await bed.vccr.checkpoints.show(CLUSTER, c.checkpointId)).manifest);

  // Disk chains: the running one and each checkpoint's are bounded; the store holds only what they need.
  const running = runningChain(bed.store, CLUSTER, JOURNAL_VM.name, 'data');
  assert.deepEqual(headerChain(running[0] ?? ''), running, 'chain.json matches the qcow2 headers');
  t.diagnostic(`running chain after ${runs.length} checkpoints: ${running.length} layers`);
  assert.ok(running.length <= 3 + 2, `the running disk chain has ${running.length} layers (≤ 5)`);
  const needed = new Set(running);
  for (const m of manifests) {
    const chain = headerChain(m.vms.find((v) => v.name === JOURNAL_VM.name)?.disks[0]?.frozen ?? '');
    assert.ok(chain.length <= 4, `checkpoint ${m.checkpointId}'s disk chain has ${chain.length} layers`);
    for (const layer of chain) needed.add(layer);
  }
  const diskDir = join(bed.store, CLUSTER, '_disks', JOURNAL_VM.name, 'data');
  const layers = readdirSync(diskDir).filter((f) => f.endsWith('.qcow2')).map((f) => join(diskDir, f));
  assert.deepEqual(layers.sort(), [...needed].filter((l) => l.startsWith(diskDir)).sort(), 'no disk layer beyond what the kept checkpoints and the running VM need');
  const folders = readdirSync(join(bed.store, CLUSTER)).filter((e) => !e.startsWith('_'));
  assert.deepEqual(folders.sort(), list.committed.map((c) => c.checkpointId).sort(), 'no checkpoint folder beyond the kept ones');

  // Retention said what it deleted and why, every round.
  const records = readdirSync(join(bed.store, CLUSTER, '_retention')).map((f) => JSON.parse(readFileSync(join(bed.store, CLUSTER, '_retention', f), 'utf8')) as { deleted: Array<{ id: string; reasons: string[] }> });
  assert.ok(records.length >= RUNS, `${records.length} retention records`);
  const deleted = records.flatMap((r) => r.deleted);
  assert.equal(deleted.length, runs.length - 3, 'every checkpoint but the 3 kept was deleted once');
  for (const d of deleted) assert.deepEqual(d.reasons, ['not one of the 3 newest']);

  // Each kept checkpoint: state files verify, its frozen disk holds exactly its journal, and it restores.
  await bed.vccr.protection.off(CLUSTER);
  for (const m of manifests) {
    assert.equal((await bed.vccr.checkpoints.verify(CLUSTER, m.checkpointId)).ok, true, `${m.checkpointId} verifies`);
    const at = journalAtCheckpoint(m, JOURNAL_VM.name);
    const disk = verifyJournalDisk(bed, m.vms.find((v) => v.name === JOURNAL_VM.name)?.disks[0]?.frozen ?? '');
    assert.ok(disk.ok, `${m.checkpointId}: frozen disk verifies: ${disk.output}`);
    assert.ok(disk.records === at + 1 || disk.records === at + 2, `${m.checkpointId}: frozen disk holds the journal up to the checkpoint (${disk.records} records, last reported ${at})`);
  }
  for (const m of manifests) {
    await bed.killAllVms();
    await bed.vccr.restart(CLUSTER, { checkpointId: m.checkpointId, force: true });
    await assertRingContinued(bed, CLUSTER, m, HOME, 5, RING_VMS.map((v) => v.name));
    await assertJournalContinued(bed.consoleLog(JOURNAL_VM.host, CLUSTER, JOURNAL_VM.name), m, JOURNAL_VM.name, 10);
    t.diagnostic(`${m.checkpointId}: restored; ring and journal continued from it`);
  }
});

test('a schedule faster than a checkpoint never runs two at once (overlap: skip)', { timeout: 300_000 }, async (t) => {
  const before = (await protectRuns()).length;
  await bed.vccr.protection.protect(CLUSTER, { everyMs: 1000, jitterMs: 0, retention: { keepLast: 3 }, watch: { checkEverySeconds: 10 } });
  await sleep(15_000);
  const described = await bed.vccr.protection.status(CLUSTER);
  await quiesce();
  await bed.vccr.protection.off(CLUSTER);
  const runs = (await protectRuns()).slice(before);
  t.diagnostic(`${runs.length} runs in 15 s at a 1 s interval; ${described.schedule?.skippedOverlap ?? 0} skipped as overlapping`);
  assert.ok(runs.length >= 2, 'the schedule ran');
  assert.ok((described.schedule?.skippedOverlap ?? 0) > 0, 'due runs were skipped while one was running');
  for (let i = 1; i < runs.length; i++) {
    const [prev, next] = [runs[i - 1], runs[i]];
    assert.ok(prev && next && next.start >= prev.end, `${next?.workflowId} started after ${prev?.workflowId} ended`);
  }
  assert.deepEqual(runs.filter((r) => r.status !== 'COMPLETED').map((r) => `${r.workflowId}: ${r.status}`), [], 'no run failed (none was refused as busy)');
});
