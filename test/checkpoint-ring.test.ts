// Checkpoint and restart of a token ring across 3 VMs on 2 host workers, through the real workflows:
// the ring carries on from the exact token it had, over the same TCP connections. Then: two checkpoints
// and a restart from the older one, the same checkpoint restored twice, a deleted checkpoint leaving the
// other intact, and a restart onto another host worker (--host b=a).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestBed } from '../harness/testbed';
import { readConsole, ringErrors, ringTokens, waitForConsole } from '../harness/console';
import type { CheckpointResult, Manifest, RestartResult } from '../client';
import { assertRingContinued } from './helpers/ring-check';
import { placementOf, RING3, startRingBed } from './helpers/ring-bed';

const CLUSTER = 'ring';
const VMS = RING3;
const HOME = placementOf(VMS);

let bed: TestBed;
before(async () => (bed = await startRingBed(CLUSTER, VMS)));
after(() => bed?.stop());

async function checkpoint(): Promise<{ result: CheckpointResult; manifest: Manifest }> {
  const result = await bed.vccr.checkpoint(CLUSTER);
  assert.ok('downtimeMs' in result, 'checkpoint completed');
  const { manifest } = await bed.vccr.checkpoints.show(CLUSTER, result.checkpointId);
  return { result, manifest };
}

async function restart(checkpointId: string, hostMap?: Record<string, string>): Promise<RestartResult> {
  const killed = await bed.killAllVms();
  assert.equal(killed.length, 3, 'three VMs were running and are killed');
  const result = await bed.vccr.restart(CLUSTER, { checkpointId, ...(hostMap ? { hostMap } : {}) });
  assert.ok('restoreMs' in result, 'restart completed');
  return result;
}

/** Lets the ring run on, so the VMs' state moves well past the checkpoint. */
async function letRingRun(placement: Record<string, string>, tokens = 10): Promise<void> {
  for (const [vm, host] of Object.entries(placement)) {
    const path = bed.consoleLog(host, CLUSTER, vm);
    const from = readConsole(path).length;
    await waitForConsole(path, new RegExp(`(?:^RING TOKEN .*\\n){${tokens}}`, 'm'), { from, timeoutMs: 60_000 });
  }
}

let first: { result: CheckpointResult; manifest: Manifest };
let second: { result: CheckpointResult; manifest: Manifest };

test('checkpoint mid-traffic, kill every VM, restart: the ring continues from the exact token', { timeout: 240_000 }, async (t) => {
  first = await checkpoint();
  t.diagnostic(`checkpoint: downtime ${first.result.downtimeMs} ms, ${first.result.totalBytes} bytes, pause skew ${first.result.pauseSkewMs} ms, resume skew ${first.result.resumeSkewMs} ms`);
  assert.equal(first.manifest.vms.length, 3);
  assert.deepEqual(first.manifest.vms.map((v) => v.host), ['a', 'b', 'a']);
  // The cluster was resumed after the checkpoint: the ring goes on past it before we kill it.
  await letRingRun(HOME);
  const restarted = await restart(first.result.checkpointId);
  t.diagnostic(`restart: ${restarted.restoreMs} ms, resume skew ${restarted.resumeSkewMs} ms`);
  await assertRingContinued(bed, CLUSTER, first.manifest, HOME);
});

test('two checkpoints, restart from the older one', { timeout: 240_000 }, async () => {
  await letRingRun(HOME);
  second = await checkpoint();
  await letRingRun(HOME);
  await restart(first.result.checkpointId);
  await assertRingContinued(bed, CLUSTER, first.manifest, HOME);
  // The restore history is in every console: two restores from the first checkpoint so far.
  const text = readConsole(bed.consoleLog('a', CLUSTER, 'vm0'));
  assert.equal([...text.matchAll(new RegExp(`restoring from checkpoint ${first.result.checkpointId} `, 'g'))].length, 2);
});

test('the same checkpoint restores again (restart twice from it)', { timeout: 240_000 }, async () => {
  await letRingRun(HOME);
  await restart(first.result.checkpointId);
  await assertRingContinued(bed, CLUSTER, first.manifest, HOME);
});

test('deleting one checkpoint leaves the other restorable', { timeout: 240_000 }, async () => {
  const deleted = await bed.vccr.checkpoints.delete(CLUSTER, first.result.checkpointId);
  assert.ok(deleted.removedFiles.some((f) => f.endsWith('manifest.json')));
  const list = await bed.vccr.checkpoints.list(CLUSTER);
  assert.deepEqual(list.committed.map((c) => c.checkpointId), [second.result.checkpointId]);
  const verify = await bed.vccr.checkpoints.verify(CLUSTER, second.result.checkpointId);
  assert.equal(verify.ok, true, verify.problems.join('; '));
  await letRingRun(HOME);
  await restart(second.result.checkpointId);
  await assertRingContinued(bed, CLUSTER, second.manifest, HOME);
  await assert.rejects(bed.vccr.restart(CLUSTER, { checkpointId: first.result.checkpointId, force: true }), /unknown checkpoint/);
});

test('restart onto another host worker: --host b=a brings vm1 back on host a', { timeout: 240_000 }, async () => {
  await letRingRun(HOME);
  const result = await restart(second.result.checkpointId, { b: 'a' });
  const moved = { vm0: 'a', vm1: 'a', vm2: 'a' };
  assert.deepEqual(Object.fromEntries(result.vms.map((v) => [v.name, v.host])), moved);
  await assertRingContinued(bed, CLUSTER, second.manifest, moved);
  const status = await bed.vccr.status(CLUSTER);
  assert.deepEqual(status.vms.map((v) => [v.name, v.host, v.qmpStatus]), [['vm0', 'a', 'running'], ['vm1', 'a', 'running'], ['vm2', 'a', 'running']]);
  // A checkpoint taken now records the new placement.
  const third = await checkpoint();
  assert.deepEqual(third.manifest.vms.map((v) => v.host), ['a', 'a', 'a']);
  for (const vm of VMS) {
    const text = readConsole(bed.consoleLog('a', CLUSTER, vm.name));
    assert.deepEqual(ringErrors(text.slice(text.lastIndexOf('=== vccr:'))), []);
    assert.ok(ringTokens(text).length > 0);
  }
});
