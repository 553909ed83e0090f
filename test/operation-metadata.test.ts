// Every operation the client starts tells its story in the Temporal Web UI before anyone opens its
// history: a one-line staticSummary and markdown staticDetails naming the VMs, their hosts, the mode and
// the store. Real dev server, real workers, real QEMU (machine "none": no guest, so it is quick).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestBed } from '../harness/testbed';
import { checkpointWorkflowId } from '../common/ids';

let bed: TestBed;
const CLUSTER = 'meta';

before(async () => (bed = await TestBed.start({ hosts: ['a', 'b'] })));
after(() => bed?.stop());

async function described(): Promise<Map<string, { type: string; summary: string | undefined; details: string | undefined }>> {
  const client = await bed.temporal();
  const out = new Map<string, { type: string; summary: string | undefined; details: string | undefined }>();
  for await (const wf of client.workflow.list({ query: `WorkflowType != 'clusterRecord'` })) {
    const d = await client.workflow.getHandle(wf.workflowId, wf.runId).describe();
    out.set(wf.workflowId, { type: wf.type, summary: await d.staticSummary(), details: await d.staticDetails() });
  }
  return out;
}

test('every operation started by the client carries a summary and details for the Web UI', { timeout: 180_000 }, async () => {
  const vms = [
    { name: 'vm0', host: 'a', memoryMiB: 16, machine: 'none' as const },
    { name: 'vm1', host: 'b', memoryMiB: 16, machine: 'none' as const },
    { name: 'vm2', host: 'a', memoryMiB: 16, machine: 'none' as const },
  ];
  await bed.vccr.up({ cluster: CLUSTER, store: bed.store, hosts: { a: {}, b: {} }, vms });
  await bed.vccr.status(CLUSTER);
  await bed.vccr.checkpoint(CLUSTER, { checkpointId: 'ck1' });
  await bed.vccr.checkpoints.list(CLUSTER);
  await bed.vccr.checkpoints.show(CLUSTER, 'ck1');
  await bed.vccr.checkpoints.verify(CLUSTER, 'ck1');
  await bed.vccr.restart(CLUSTER, { checkpointId: 'ck1', hostMap: { a: 'b' }, force: true });
  await bed.vccr.checkpoint(CLUSTER, { checkpointId: 'ck2' });
  await bed.vccr.checkpoints.delete(CLUSTER, 'ck1');
  await bed.vccr.down(CLUSTER);

  const all = await described();
  const types = [...all.values()].map((w) => w.type).sort();
  assert.deepEqual(types, [
    'checkpointCluster', 'checkpointCluster', 'deleteCheckpoint', 'inspectCluster', 'launchCluster', 'listCheckpoints',
    'restartCluster', 'showCheckpoint', 'shutdownCluster', 'verifyCheckpoint',
  ]);
  for (const [id, w] of all) {
    assert.ok(w.summary && !w.summary.includes('\n'), `${id}: one-line summary (${w.summary})`);
    assert.ok(w.details?.includes(`**${CLUSTER}**`), `${id}: details name the cluster`);
  }
  const byType = (type: string) => [...all.values()].filter((w) => w.type === type);
  const ck1 = all.get(checkpointWorkflowId(CLUSTER, 'ck1'));
  assert.equal(ck1?.summary, 'checkpoint meta ck1 · 3 VMs on a, b · stop');
  for (const line of ['| vm0 | a |', '| vm1 | b |', '| vm2 | a |', `Checkpoint folder: \`${bed.store}/meta/ck1/\``]) assert.ok(ck1?.details?.includes(line), `checkpoint details: ${line}\n${ck1?.details}`);
  assert.equal(byType('launchCluster')[0]?.summary, 'launch meta · 3 VMs on a, b');
  assert.match(byType('launchCluster')[0]?.details ?? '', /\| vm1 \| b \| 16 MiB \| 1 \| tcg \|/);
  // The restart names the checkpoint, where the VMs come back (a → b: all on b) and that it was forced.
  assert.equal(byType('restartCluster')[0]?.summary, 'restart meta from ck1 · 3 VMs on b · hosts a→b · force');
  assert.match(byType('restartCluster')[0]?.details ?? '', /\| vm0 \| a \| b \|/);
  // After the restart every VM runs on b: the next checkpoint's summary says so.
  assert.equal(all.get(checkpointWorkflowId(CLUSTER, 'ck2'))?.summary, 'checkpoint meta ck2 · 3 VMs on b · stop');
  assert.equal(byType('shutdownCluster')[0]?.summary, 'down meta · 3 VMs on b · quit');
  assert.equal(byType('inspectCluster')[0]?.summary, 'status meta · 3 VMs on a, b');
  assert.equal(byType('verifyCheckpoint')[0]?.summary, 'verify checkpoint meta ck1');
  assert.equal(byType('listCheckpoints')[0]?.summary, 'list checkpoints of meta');
  assert.equal(byType('deleteCheckpoint')[0]?.summary, 'delete checkpoint meta ck1');
});
