// What the Web UI shows of an operation: the current-details markdown (workflows/details.ts) and the
// activity summary helpers (workflows/summary.ts). Pure functions, tested without a server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderClusterDetails, renderDetails } from '../workflows/details';
import { applyTransferReports } from '../workflows/transfer-progress';
import { formatBytes, stateFiles, vmList } from '../workflows/summary';
import type { OperationProgress, VmProgress } from '../common/messages';

const MiB = 1024 * 1024;

function progress(vms: Record<string, VmProgress>, extra: Partial<OperationProgress> = {}): OperationProgress {
  const done = Object.values(vms).reduce((s, v) => s + v.bytesDone, 0);
  const total = Object.values(vms).reduce((s, v) => s + v.bytesTotal, 0);
  return {
    format: 'vccr-progress',
    version: 1,
    operation: 'checkpoint',
    cluster: 'demo',
    checkpointId: 'ck-1',
    phase: 'save',
    vms,
    phases: { prepare: { start: 0, end: 250 }, capture: { start: 250, end: 400 }, save: { start: 400 } },
    bytesDone: done,
    bytesTotal: total,
    startedAt: 0,
    ...extra,
  };
}

test('a checkpoint in its save phase: phase, bytes saved of total, each VM, phase times so far', () => {
  const text = renderDetails(
    progress({
      vm1: { host: 'b', state: 'saving', bytesDone: 16 * MiB, bytesTotal: 64 * MiB },
      vm0: { host: 'a', state: 'saved', bytesDone: 64 * MiB, bytesTotal: 64 * MiB },
    }),
    1400,
  );
  assert.equal(
    text,
    [
      '**checkpoint ck-1** of cluster **demo** · phase **save**',
      'saved **80.0 MiB of 128.0 MiB** (62 %)',
      '',
      '- vm0 on host a: saved (64.0 MiB of 64.0 MiB)',
      '- vm1 on host b: saving (16.0 MiB of 64.0 MiB)',
      '',
      'phases: prepare 0.25 s · capture 0.15 s · save 1.00 s …',
    ].join('\n'),
  );
});

test('a failed operation says where and why; a restart counts bytes loaded', () => {
  const failed = renderDetails(progress({ vm0: { host: 'a', state: 'running', bytesDone: 0, bytesTotal: 0 } }, { phase: 'abort', error: 'ENOSPC' }), 500);
  assert.match(failed, /^\*\*checkpoint ck-1\*\* of cluster \*\*demo\*\* · \*\*failed\*\* \(abort\): ENOSPC$/m);
  assert.doesNotMatch(failed, /saved/, 'no byte count without bytes');
  const restart = renderDetails(progress({ vm0: { host: 'b', state: 'loading', bytesDone: MiB, bytesTotal: 4 * MiB } }, { operation: 'restart', phase: 'load' }), 500);
  assert.match(restart, /^loaded \*\*1\.0 MiB of 4\.0 MiB\*\* \(25 %\)$/m);
});

test('a large cluster is summarised by state, not listed VM by VM', () => {
  const vms = Object.fromEntries(
    Array.from({ length: 40 }, (_, i): [string, VmProgress] => [`vm${i}`, { host: `h${i % 4}`, state: i < 30 ? 'saved' : 'saving', bytesDone: 0, bytesTotal: 0 }]),
  );
  const text = renderDetails(progress(vms), 500);
  assert.match(text, /^- 40 VMs: 30 saved, 10 saving$/m);
  assert.ok(text.split('\n').length < 10);
});

test('the cluster record: status, where each VM runs, the lock, the last operation', () => {
  const text = renderClusterDetails({
    cluster: 'demo',
    status: 'running',
    placement: { vm2: 'a', vm0: 'a', vm1: 'b' },
    lastCheckpointId: 'ck-1',
    lock: { operation: 'checkpoint', workflowId: 'vccr-demo-checkpoint-ck-2', runId: 'r', since: 0, checkpointId: 'ck-2' },
    recent: [{ operation: 'checkpoint', workflowId: 'w', outcome: 'completed', at: 0, checkpointId: 'ck-1' }],
  });
  assert.equal(
    text,
    [
      'cluster **demo** · **running** · last checkpoint **ck-1**',
      'busy: **checkpoint ck-2** (vccr-demo-checkpoint-ck-2)',
      '',
      '- host a: vm0, vm2',
      '- host b: vm1',
      '',
      'last operation: checkpoint ck-1 completed',
    ].join('\n'),
  );
});

test('summary helpers keep a line short', () => {
  assert.equal(vmList(['vm0', 'vm2']), 'vm0, vm2');
  assert.equal(vmList(Array.from({ length: 16 }, (_, i) => `vm${i}`)), 'vm0, vm1, vm2, vm3 … (16 VMs)');
  assert.equal(stateFiles('ck-1', ['vm0', 'vm2']), 'ck-1/vm0.state, vm2.state');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(51498390), '49.1 MiB');
  assert.equal(formatBytes(3 * 1024 * MiB), '3.0 GiB');
});

test('a transfer report delivered after the save settled the figures leaves them at 100 % (CI saw 99 % on the Web UI)', () => {
  const vms: Record<string, VmProgress> = { vm0: { host: 'a', state: 'saved', bytesDone: 40 * MiB, bytesTotal: 40 * MiB } };
  // Sent during the save (total = the VM's RAM), delivered after the save's result.
  applyTransferReports(vms, [{ vm: 'vm0', bytesDone: 39 * MiB, bytesTotal: 128 * MiB }], new Set(['vm0']));
  assert.deepEqual(vms.vm0, { host: 'a', state: 'saved', bytesDone: 40 * MiB, bytesTotal: 40 * MiB });
  const details = renderDetails(progress(vms, { phase: 'done' }), 1000);
  assert.match(details, /saved \*\*40(\.0)? MiB of 40(\.0)? MiB\*\* \(100 %\)/);
  // Not settled yet: reports move the counts, never backwards.
  const running: Record<string, VmProgress> = { vm1: { host: 'b', state: 'paused', bytesDone: 10 * MiB, bytesTotal: 128 * MiB } };
  applyTransferReports(running, [{ vm: 'vm1', bytesDone: 5 * MiB, bytesTotal: 128 * MiB }, { vm: 'vm1', bytesDone: 20 * MiB, bytesTotal: 128 * MiB }], new Set());
  assert.equal(running.vm1?.bytesDone, 20 * MiB);
});
