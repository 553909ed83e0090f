// The host's part of a live checkpoint (ARCHITECTURE.md, "Live checkpoints"): one capture step per host
// executes a timed plan without any workflow round trip inside the pause — per VM, in parallel: prepare
// the background snapshot (receiver, relay, capabilities) while the guest runs; hold the pause lease; at
// the pause instant re-check the lease and `stop`; freeze the disks (disk and memory one cut); `migrate`
// with background-snapshot, which QEMU 7.2 answers by resuming the guest itself; release the lease on
// RESUME. The RAM write goes on in the background, received by a detached writer process (live-writer/)
// that outlives this worker, keyed by checkpoint + run + VM; finishLiveWrites joins it (also from a
// restarted worker), cancelLiveWrites drains it and removes the file (never migrate_cancel on 7.2).
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { storeLayout } from '../../common/store-layout';
import { fsyncDir, writeFileAtomic } from '../../node/fsutil';
import { testHook } from '../test-hooks';
import { freezeVm, pauseAtBarrier } from './checkpoint-steps';
import { hostNow } from './clock';
import { consoleSize } from './launch';
import { configureMigration, MigrationError, prepareBackgroundSnapshot, type BackgroundSnapshot, type PreparedSnapshot, type RunStateChange, type SnapshotSink } from './migration';
import { detachedSink, joinWriter, readStatus, writerOutcome } from './live-writer';
import { clearBarrierMark, StoreBarrier } from './store-barrier';
import type { VmRecord } from './registry';
import type { HostRuntime } from './runtime';
import { completedEarlier } from './save-step';
import type { LiveCancelRequest, LiveCaptured, LiveCaptureRequest, LiveFinishRequest, LivePrepareRequest, ResumeReport, SavedState } from './types';

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

type RunRef = { cluster: string; checkpointId: string; runId: string };

function keyOf(req: RunRef, vm: string): string {
  return `${req.cluster}/${req.checkpointId}/${req.runId}/${vm}`;
}

/** Where a snapshot's detached writer reports and its capture is recorded: survives a worker restart. */
function filesOf(runtime: HostRuntime, req: RunRef, vm: string): { dir: string; status: string; captured: string; log: string } {
  const dir = join(runtime.registry.vmDir(req.cluster, vm), 'live');
  const base = join(dir, `${req.checkpointId}+${req.runId}`);
  return { dir, status: `${base}.status.json`, captured: `${base}.captured.json`, log: join(dir, 'writer.log') };
}

/** This run's capture of `vm`, held in memory or recorded by an earlier worker. */
function capturedEarlier(runtime: HostRuntime, req: RunRef, vm: string): LiveCaptured | undefined {
  const held = writes(runtime).get(keyOf(req, vm))?.captured;
  if (held) return held;
  const path = filesOf(runtime, req, vm).captured;
  if (!existsSync(path)) return undefined;
  return JSON.parse(readFileSync(path, 'utf8')) as LiveCaptured;
}

/**
 * Everything before the pause that takes time (a writer process per VM, sockets, capabilities), in its own
 * step: the capture's timed plan is scheduled from this step's dispatch latency. Returns the receipt time.
 */
export async function prepareLive(runtime: HostRuntime, req: LivePrepareRequest): Promise<{ receivedAt: number }> {
  const receivedAt = hostNow();
  const records = req.vms.map((vm) => runtime.requireVm(req.cluster, vm));
  await Promise.all(records.filter((r) => !capturedEarlier(runtime, req, r.name)).map((record) => prepareOne(runtime, req, record)));
  return { receivedAt };
}

export async function captureLive(runtime: HostRuntime, req: LiveCaptureRequest): Promise<LiveCaptured[]> {
  const receivedAt = hostNow();
  const records = req.vms.map((vm) => runtime.requireVm(req.cluster, vm));
  // A retry of this run (also by a restarted worker): what was captured stays captured (its lease is released).
  const earlier = new Map(records.flatMap((r) => { const c = capturedEarlier(runtime, req, r.name); return c ? [[r.name, c] as const] : []; }));
  const todo = records.filter((r) => !earlier.has(r.name));
  if (todo.length) {
    const prepared = new Map(await Promise.all(todo.map(async (record) => [record.name, await prepareOne(runtime, req, record)] as const)));
    // Stop mode's pause barrier (leases, the wait until T capped at the lease deadline, the lease re-check
    // right before each stop); then per VM, at once: freeze, snapshot at T + gap. Each VM's outcome is
    // awaited before a failure is reported, so no snapshot is still starting when the undo path runs.
    const barrier = { cluster: req.cluster, checkpointId: req.checkpointId, runId: req.runId, vms: todo.map((r) => r.name), pauseBoundMs: req.pauseBoundMs, notBefore: req.pauseAt };
    const marks = req.barrierHosts ? new StoreBarrier(req, runtime.hostId, req.barrierHosts, todo.length, req.snapshotAt) : undefined;
    const outcomes = await pauseAtBarrier(runtime, barrier, (record, _qmp, stopped) =>
      afterStop(runtime, req, { record, stopped, write: prepared.get(record.name) as LiveWrite, receivedAt, marks }).then(
        (value) => ({ ok: true as const, value }),
        (error: unknown) => ({ ok: false as const, error }),
      ),
    );
    const failed = outcomes.find((o) => !o.ok);
    if (failed && !failed.ok) throw failed.error;
    for (const o of outcomes) if (o.ok) earlier.set(o.value.name, o.value);
  }
  return records.map((r) => earlier.get(r.name) as LiveCaptured);
}

/** The snapshot's writer, relay and capabilities, set up while the guest still runs (or found from an earlier attempt). */
async function prepareOne(runtime: HostRuntime, req: LivePrepareRequest, record: VmRecord): Promise<LiveWrite> {
  const key = keyOf(req, record.name);
  const existing = writes(runtime).get(key);
  if (existing) return existing;
  const files = filesOf(runtime, req, record.name);
  // A writer an earlier worker prepared but never captured with: give it up (it drains if QEMU connected).
  if (existsSync(files.status)) {
    joinWriter(files.status).drop(new Error('superseded by a retried capture'));
    await writerOutcome(files.status);
    await rm(files.status, { force: true });
  }
  await mkdir(files.dir, { recursive: true, mode: 0o700 });
  const file = storeLayout.stateFile(req.store, req.cluster, req.checkpointId, record.name);
  const partial = `${file}.partial`;
  await rm(partial, { force: true });
  const qmp = await runtime.qmp(record);
  const prepared = await prepareBackgroundSnapshot(qmp, {
    vm: record.name,
    socketPath: join(runtime.registry.vmDir(record.cluster, record.name), 'live.sock'),
    file: partial,
    sink: detachedSink(files.status, files.log),
  });
  const write: LiveWrite = { prepared, partial };
  writes(runtime).set(key, write);
  return write;
}

interface Stopped {
  record: VmRecord;
  stopped: RunStateChange;
  write: LiveWrite;
  receivedAt: number;
  /** The store barrier, when the workflow asked for one. */
  marks: StoreBarrier | undefined;
}

/** Right after a VM's stop: freeze, then the snapshot at T + gap (QEMU resumes the guest); the lease is released on its RESUME. */
async function afterStop(runtime: HostRuntime, req: LiveCaptureRequest, { record, stopped, write, receivedAt, marks }: Stopped): Promise<LiveCaptured> {
  if (write.captured) return write.captured;
  const vm = record.name;
  marks?.reached();
  try {
    const consoleOffset = consoleSize(record);
    const frozen = await freezeVm(runtime, req, record);
    await testHook('live:before-snapshot', vm);
    const lease = runtime.watchdog.check(record, req.checkpointId, req.runId);
    const latest = Math.min(req.snapshotAt, lease.deadline);
    // Every host marked its VMs stopped: start now; otherwise at T + gap, and the cut check decides.
    const start = marks && (await marks.wait(latest, vm)) === 'marked' ? undefined : latest;
    const snapshot = await write.prepared.start(start);
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
    await writeFileAtomic(filesOf(runtime, req, vm).captured, JSON.stringify(captured));
    write.captured = captured;
    return captured;
  } catch (err) {
    // Not started: nothing runs in QEMU yet; the VM (still paused) is resumed by the undo path or its lease.
    if (!write.snapshot) {
      writes(runtime).delete(keyOf(req, vm));
      await write.prepared.discard().catch(() => undefined);
      await rm(filesOf(runtime, req, vm).status, { force: true });
    }
    throw err instanceof MigrationError ? ApplicationFailure.nonRetryable(err.message, 'LiveCaptureFailed') : err;
  }
}

/** Joins the background writes: each file complete, fsynced, renamed into place, with its sidecar. */
export async function finishLiveWrites(runtime: HostRuntime, req: LiveFinishRequest, report: (vm: string, done: number, total: number) => void): Promise<SavedState[]> {
  // Every host's capture is over (the workflow saw them all): the barrier's marks are not needed any more.
  await clearBarrierMark(req, runtime.hostId);
  return Promise.all(
    req.vms.map(async (vm) => {
      const record = runtime.requireVm(req.cluster, vm);
      const file = storeLayout.stateFile(req.store, req.cluster, req.checkpointId, vm);
      const done = completedEarlier(file, req.runId);
      if (done) return { name: vm, file, ...done };
      const captured = capturedEarlier(runtime, req, vm);
      if (!captured) throw ApplicationFailure.nonRetryable(`VM ${vm} was not captured by this checkpoint run on host ${runtime.hostId}`, 'LiveWriteLost');
      const write = writes(runtime).get(keyOf(req, vm));
      const total = record.config.memoryMiB * 1024 * 1024;
      const snapshot = write?.snapshot;
      // Without the snapshot in memory (this worker restarted since the capture): join its writer.
      const joined = snapshot ? undefined : existsSync(filesOf(runtime, req, vm).status) ? joinWriter(filesOf(runtime, req, vm).status) : undefined;
      const bytes = () => snapshot?.bytes() ?? joined?.bytes ?? 0;
      const timer = setInterval(() => report(vm, bytes(), Math.max(total, bytes())), 1000);
      try {
        const result = snapshot
          ? await snapshot.done.catch((err: unknown) => {
              throw writeFailure(vm, err);
            })
          : await joinedWrite(runtime, req, record, joined);
        await testHook('live:after-write', vm);
        const finishedAt = hostNow();
        await rename(`${file}.partial`, file);
        fsyncDir(dirname(file));
        const saved = { size: result.size, sha256: result.sha256, startedAt: Math.floor(captured.snapshotAt), finishedAt };
        await writeFileAtomic(`${file}.json`, JSON.stringify({ runId: req.runId, ...saved }));
        report(vm, result.size, result.size);
        await forget(runtime, req, vm);
        return { name: vm, file, ...saved };
      } finally {
        clearInterval(timer);
      }
    }),
  );
}

/**
 * A write an earlier worker started: the detached writer says how it ended, and QEMU must say the snapshot
 * completed (a stream that merely ended may be a failed one).
 */
async function joinedWrite(runtime: HostRuntime, req: RunRef, record: VmRecord, writer: SnapshotSink | undefined): Promise<{ size: number; sha256: string }> {
  const vm = record.name;
  await writer?.ended;
  const status = writer ? readStatus(filesOf(runtime, req, vm).status) : undefined;
  if (!status) throw ApplicationFailure.nonRetryable(`no live writer ran for VM ${vm} on host ${runtime.hostId}`, 'LiveWriteLost');
  if (status.state !== 'received') throw writeFailure(vm, Object.assign(new Error(status.state === 'failed' ? status.error : 'the writer stopped'), status.state === 'failed' && status.code ? { code: status.code } : {}));
  const qmp = await runtime.qmp(record);
  const { status: migration } = await qmp.command('query-migrate');
  await configureMigration(qmp, vm, { backgroundSnapshot: false }).catch(() => undefined);
  if (migration !== 'completed') throw ApplicationFailure.nonRetryable(`the background snapshot of VM ${vm} ended ${migration}, not completed`, 'LiveWriteFailed');
  return { size: status.size, sha256: status.sha256 };
}

/** Drops what this worker and its writer kept for a snapshot whose file is in place or removed. */
async function forget(runtime: HostRuntime, req: RunRef, vm: string): Promise<void> {
  writes(runtime).delete(keyOf(req, vm));
  const files = filesOf(runtime, req, vm);
  for (const f of [files.status, files.captured]) await rm(f, { force: true });
}

/** A failed background write cannot be retried (the snapshot instant is gone): final, store-full named as such. */
function writeFailure(vm: string, err: unknown): ApplicationFailure {
  const cause = err instanceof MigrationError ? err.cause : err;
  const code = (cause as NodeJS.ErrnoException | undefined)?.code ?? (err as NodeJS.ErrnoException | undefined)?.code;
  const message = `the background write of VM ${vm} failed: ${err instanceof Error ? err.message : String(err)}`;
  return ApplicationFailure.nonRetryable(message, code === 'ENOSPC' || code === 'EDQUOT' ? 'StoreFull' : 'LiveWriteFailed');
}

/**
 * Gives the live writes of a failed checkpoint up: a running write is drained to its end (QEMU 7.2 lifts the
 * write protection only on completion), then every file is removed. Never throws for one VM.
 */
export async function cancelLiveWrites(runtime: HostRuntime, req: LiveCancelRequest): Promise<ResumeReport> {
  await clearBarrierMark(req, runtime.hostId);
  const report: ResumeReport = { resumed: [], failed: [] };
  await Promise.all(
    req.vms.map(async (vm) => {
      const write = writes(runtime).get(keyOf(req, vm));
      try {
        if (write?.snapshot) await write.snapshot.cancel();
        else if (write) await write.prepared.discard();
        else {
          // Held by an earlier worker's writer, if any: drain it to its end.
          const status = filesOf(runtime, req, vm).status;
          if (existsSync(status)) {
            joinWriter(status).drop(new Error('the checkpoint failed'));
            await writerOutcome(status);
          }
        }
        const file = storeLayout.stateFile(req.store, req.cluster, req.checkpointId, vm);
        for (const f of [`${file}.partial`, file, `${file}.json`]) await rm(f, { force: true });
        await forget(runtime, req, vm);
        report.resumed.push({ name: vm, at: hostNow() });
      } catch (err) {
        report.failed.push({ name: vm, reason: err instanceof Error ? err.message : String(err) });
      }
    }),
  );
  return report;
}
