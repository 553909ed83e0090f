// The host's part of a live checkpoint (ARCHITECTURE.md, "Live checkpoints"): one capture step per host
// executes a timed plan without any workflow round trip inside the pause — per VM, in parallel: prepare
// the background snapshot (receiver, relay, capabilities) while the guest runs; hold the pause lease; at
// the pause instant re-check the lease and `stop`; freeze the disks (disk and memory one cut); `migrate`
// with background-snapshot, which QEMU 7.2 answers by resuming the guest itself; release the lease on
// RESUME. The RAM write goes on in the background (this worker holds it, keyed by checkpoint + run + VM);
// finishLiveWrites joins it, cancelLiveWrites drains it and removes the file (never migrate_cancel on 7.2).
import { rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { storeLayout } from '../../common/store-layout';
import { fsyncDir, writeFileAtomic } from '../../node/fsutil';
import { testHook } from '../test-hooks';
import { barrierTime, freezeVm } from './checkpoint-steps';
import { hostNow } from './clock';
import { consoleSize } from './launch';
import { MigrationError, pauseVm, prepareBackgroundSnapshot, waitUntil, type BackgroundSnapshot, type PreparedSnapshot } from './migration';
import { ensurePauseGuard } from './pause-guard';
import type { VmRecord } from './registry';
import type { HostRuntime } from './runtime';
import { completedEarlier } from './save-step';
import type { LiveCancelRequest, LiveCaptured, LiveCaptureRequest, LiveFinishRequest, ResumeReport, SavedState } from './types';

/** One VM's live snapshot as this worker holds it, from prepare to the end of its write. */
interface LiveWrite {
  prepared: PreparedSnapshot;
  snapshot?: BackgroundSnapshot;
  captured?: LiveCaptured;
  partial: string;
}

/** Per host runtime: the live writes it holds, by `<cluster>/<checkpoint>/<run>/<vm>`. */
const writesOf = new WeakMap<HostRuntime, Map<string, LiveWrite>>();

function writes(runtime: HostRuntime): Map<string, LiveWrite> {
  let map = writesOf.get(runtime);
  if (!map) writesOf.set(runtime, (map = new Map()));
  return map;
}

function keyOf(req: { cluster: string; checkpointId: string; runId: string }, vm: string): string {
  return `${req.cluster}/${req.checkpointId}/${req.runId}/${vm}`;
}

export async function captureLive(runtime: HostRuntime, req: LiveCaptureRequest): Promise<LiveCaptured[]> {
  const receivedAt = hostNow();
  const records = req.vms.map((vm) => runtime.requireVm(req.cluster, vm));
  // A retry of this run in this worker: what was captured stays captured (its lease is released already).
  const earlier = records.map((r) => writes(runtime).get(keyOf(req, r.name))?.captured);
  if (earlier.every((c) => c !== undefined)) return earlier as LiveCaptured[];
  ensurePauseGuard(runtime.registry.stateDir);
  const prepared = await Promise.all(records.map((record) => prepareOne(runtime, req, record)));
  const leases = records.map((record) => runtime.watchdog.hold(record, req.checkpointId, req.runId, req.pauseBoundMs));
  await waitUntil(barrierTime(runtime, req.pauseAt, Math.min(...leases.map((l) => l.deadline))));
  const outcomes = await Promise.allSettled(records.map((record, i) => captureOne(runtime, req, record, prepared[i] as LiveWrite, receivedAt)));
  const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failed) throw failed.reason;
  return outcomes.map((o) => (o as PromiseFulfilledResult<LiveCaptured>).value);
}

/** The snapshot's receiver, relay and capabilities, set up while the guest still runs (or found from an earlier attempt). */
async function prepareOne(runtime: HostRuntime, req: LiveCaptureRequest, record: VmRecord): Promise<LiveWrite> {
  const key = keyOf(req, record.name);
  const existing = writes(runtime).get(key);
  if (existing) return existing;
  const file = storeLayout.stateFile(req.store, req.cluster, req.checkpointId, record.name);
  const partial = `${file}.partial`;
  await rm(partial, { force: true });
  const qmp = await runtime.qmp(record);
  const prepared = await prepareBackgroundSnapshot(qmp, {
    vm: record.name,
    socketPath: join(runtime.registry.vmDir(record.cluster, record.name), 'live.sock'),
    file: partial,
  });
  const write: LiveWrite = { prepared, partial };
  writes(runtime).set(key, write);
  return write;
}

/** Stop (lease re-checked first), freeze, snapshot; QEMU resumes the guest; the lease is released on its RESUME. */
async function captureOne(runtime: HostRuntime, req: LiveCaptureRequest, record: VmRecord, write: LiveWrite, receivedAt: number): Promise<LiveCaptured> {
  if (write.captured) return write.captured;
  const vm = record.name;
  try {
    await testHook('live:before-stop', vm);
    // Nothing awaited between the lease check and the stop (pauseVm sends it at once), as in stop mode.
    runtime.watchdog.check(record, req.checkpointId, req.runId);
    const qmp = await runtime.qmp(record);
    const stopped = await pauseVm(qmp, vm);
    const consoleOffset = consoleSize(record);
    const frozen = await freezeVm(runtime, req, record);
    await testHook('live:before-snapshot', vm);
    runtime.watchdog.check(record, req.checkpointId, req.runId);
    const snapshot = await write.prepared.start();
    write.snapshot = snapshot;
    runtime.watchdog.release(record, req.checkpointId);
    const captured: LiveCaptured = {
      name: vm,
      stoppedAt: stopped.atMs,
      resumedAt: snapshot.times.resumedAtMs,
      snapshotAt: snapshot.times.migrateAtMs,
      frozen,
      receivedAt,
      ...(consoleOffset !== undefined ? { consoleOffset } : {}),
    };
    write.captured = captured;
    return captured;
  } catch (err) {
    // Not started: nothing runs in QEMU yet; the VM (if paused) is resumed by the undo path or its lease.
    if (!write.snapshot) {
      writes(runtime).delete(keyOf(req, vm));
      await write.prepared.discard().catch(() => undefined);
    }
    throw err instanceof MigrationError ? ApplicationFailure.nonRetryable(err.message, 'LiveCaptureFailed') : err;
  }
}

/** Joins the background writes: each file complete, fsynced, renamed into place, with its sidecar. */
export async function finishLiveWrites(runtime: HostRuntime, req: LiveFinishRequest, report: (vm: string, done: number, total: number) => void): Promise<SavedState[]> {
  return Promise.all(
    req.vms.map(async (vm) => {
      const record = runtime.requireVm(req.cluster, vm);
      const file = storeLayout.stateFile(req.store, req.cluster, req.checkpointId, vm);
      const done = completedEarlier(file, req.runId);
      if (done) return { name: vm, file, ...done };
      const write = writes(runtime).get(keyOf(req, vm));
      if (!write?.snapshot || !write.captured) {
        throw ApplicationFailure.nonRetryable(`the background write of VM ${vm} is not held by host ${runtime.hostId} (its worker restarted since the capture)`, 'LiveWriteLost');
      }
      const { snapshot, captured } = write;
      const total = record.config.memoryMiB * 1024 * 1024;
      const timer = setInterval(() => report(vm, snapshot.bytes(), Math.max(total, snapshot.bytes())), 1000);
      try {
        const result = await snapshot.done.catch((err: unknown) => {
          throw writeFailure(vm, err);
        });
        await testHook('live:after-write', vm);
        const finishedAt = hostNow();
        await rename(write.partial, file);
        fsyncDir(dirname(file));
        const saved = { size: result.size, sha256: result.sha256, startedAt: Math.floor(captured.snapshotAt), finishedAt };
        await writeFileAtomic(`${file}.json`, JSON.stringify({ runId: req.runId, ...saved }));
        report(vm, result.size, result.size);
        return { name: vm, file, ...saved };
      } finally {
        clearInterval(timer);
        writes(runtime).delete(keyOf(req, vm));
      }
    }),
  );
}

/** A failed background write cannot be retried (the snapshot instant is gone): final, store-full named as such. */
function writeFailure(vm: string, err: unknown): ApplicationFailure {
  const cause = err instanceof MigrationError ? err.cause : err;
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  const message = `the background write of VM ${vm} failed: ${err instanceof Error ? err.message : String(err)}`;
  return ApplicationFailure.nonRetryable(message, code === 'ENOSPC' || code === 'EDQUOT' ? 'StoreFull' : 'LiveWriteFailed');
}

/**
 * Gives the live writes of a failed checkpoint up: a running write is drained to its end (QEMU 7.2 lifts the
 * write protection only on completion), then every file is removed. Never throws for one VM.
 */
export async function cancelLiveWrites(runtime: HostRuntime, req: LiveCancelRequest): Promise<ResumeReport> {
  const report: ResumeReport = { resumed: [], failed: [] };
  await Promise.all(
    req.vms.map(async (vm) => {
      const key = keyOf(req, vm);
      const write = writes(runtime).get(key);
      writes(runtime).delete(key);
      try {
        if (write?.snapshot) await write.snapshot.cancel();
        else await write?.prepared.discard();
        const file = storeLayout.stateFile(req.store, req.cluster, req.checkpointId, vm);
        for (const f of [`${file}.partial`, file, `${file}.json`]) await rm(f, { force: true });
        report.resumed.push({ name: vm, at: hostNow() });
      } catch (err) {
        report.failed.push({ name: vm, reason: err instanceof Error ? err.message : String(err) });
      }
    }),
  );
  return report;
}
