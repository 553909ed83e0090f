// Stop mode's host side of a checkpoint, in two steps (ARCHITECTURE.md, "Checkpoint"):
//   captureVms   at the barrier's instant, each VM's stop (lease re-checked right before), its pause
//                confirmed, its disks frozen, its save started in the background; returns pause and freeze
//                results at once, without waiting for the I/O
//   finishSaves  joins the saves; with resumeEachWhenSaved, `cont`s each VM as soon as its own state file
//                is durable — the workflow calls it only once every VM of the cut has reported its pause
// With the store barrier (barrierHosts), a host does not wait for finishSaves to resume: each VM runs again
// once its state file is durable and every host has marked its VMs paused (store-barrier.ts); finishSaves
// then only collects the resume times. No workflow round trip lies between a VM's stop and its save, and
// none between its save and its cont.
import { Context } from '@temporalio/activity';
import { testHook } from '../test-hooks';
import { freezeVm, pauseAtBarrier, requirePaused } from './checkpoint-steps';
import { BackgroundSaves } from './background-saves';
import { clearBarrierMark, StoreBarrier } from './store-barrier';
import { hostNow } from './clock';
import { consoleSize } from './launch';
import { resumeVm } from './migration';
import type { ProgressReporter } from './progress';
import type { HostRuntime } from './runtime';
import { saveVmState } from './save-step';
import type { CaptureReport, CaptureRequest, FinishSavesReport, FinishSavesRequest, FrozenVm, SavedState, SaveRequest, VmTimestamp } from './types';

/**
 * How long a host reads the other hosts' marks before it leaves its VMs to finishSaves: long enough to cover
 * the pause barrier's lead and hosts that pause a little late, short enough that hosts waiting for a mark
 * that never comes (another host's pause failed) soon stop reading.
 */
const MARKS_WINDOW_MS = 5000;

export async function captureVms(runtime: HostRuntime, req: CaptureRequest, progress: ProgressReporter): Promise<CaptureReport> {
  const receivedAt = hostNow();
  const frozen: FrozenVm[] = [];
  const marksUntil = receivedAt + MARKS_WINDOW_MS;
  const marks = req.barrierHosts ? new StoreBarrier(req, runtime.hostId, req.barrierHosts, req.vms.length, marksUntil) : undefined;
  const paused = await pauseAtBarrier(runtime, req, async (record, qmp, stopped): Promise<VmTimestamp> => {
    // A retried capture finds the VM stopped already (no STOP event): its run state is what counts.
    await requirePaused(qmp, record.name, 'after its stop');
    marks?.reached();
    const offset = consoleSize(record);
    if (record.disks.length) {
      frozen.push(await runtime.exclusive(req.cluster, record.name, () => freezeVm(runtime, req, runtime.requireVm(req.cluster, record.name))));
    }
    const saved = backgroundSave(runtime, req, record.name, progress);
    if (marks) {
      const key = BackgroundSaves.key(req.cluster, req.checkpointId, req.runId, record.name);
      runtime.saves.resumeEarly(key, (confirmed) => resumeOnceCut(runtime, req, record.name, saved, () => Promise.race([marks.wait(marksUntil, record.name), confirmed]), receivedAt));
    }
    // QEMU times events to the microsecond; records keep whole ms.
    return { name: record.name, at: Math.round(stopped.atMs), receivedAt, ...(offset !== undefined ? { consoleOffset: offset } : {}) };
  });
  return { paused, frozen };
}

/** The VM's save of this run: the one running in the background, or a new one (after a worker restart). */
function backgroundSave(runtime: HostRuntime, req: SaveRequest, vm: string, progress: ProgressReporter): Promise<SavedState> {
  const key = BackgroundSaves.key(req.cluster, req.checkpointId, req.runId, vm);
  return runtime.saves.ensure(key, (signal) =>
    // Behind the VM's other steps (its freeze): a retried step never overlaps its earlier attempt.
    runtime.exclusive(req.cluster, vm, async () => {
      const record = runtime.requireVm(req.cluster, vm);
      const total = record.config.memoryMiB * 1024 * 1024;
      try {
        return await saveVmState(runtime, req, record, signal, (bytes) => progress.report(vm, bytes, total));
      } finally {
        // Not awaited: the last progress signal must not delay the VM's resume.
        void progress.flush();
      }
    }),
  );
}

export async function finishSaves(runtime: HostRuntime, req: FinishSavesRequest, progress: ProgressReporter): Promise<FinishSavesReport> {
  const receivedAt = hostNow();
  const keys = req.vms.map((vm) => BackgroundSaves.key(req.cluster, req.checkpointId, req.runId, vm));
  const cancelled = () => keys.forEach((key) => runtime.saves.abort(key));
  const signal = Context.current().cancellationSignal;
  signal.addEventListener('abort', cancelled, { once: true });
  try {
    const outcomes = await Promise.allSettled(
      req.vms.map(async (vm, i) => {
        const early = runtime.saves.earlyResume(keys[i] ?? '');
        const saved = await backgroundSave(runtime, req, vm, progress).finally(() => runtime.saves.forget(keys[i] ?? ''));
        if (!req.resumeEachWhenSaved) return { saved };
        const resumed =
          (await early) ?? (await resumeSaved(runtime, req, vm, receivedAt).catch((err: unknown) => ({ name: vm, reason: err instanceof Error ? err.message : String(err) })));
        return { saved, resumed };
      }),
    );
    // Every host's capture is over (the workflow saw them all): this host's barrier mark is not needed any more.
    await clearBarrierMark(req, runtime.hostId);
    // Every VM's save has ended (and each saved VM runs again) before the step reports: its first failure.
    const failure = outcomes.find((o) => o.status === 'rejected');
    if (failure) throw failure.reason;
    const report: FinishSavesReport = { saved: [], resumed: [], failed: [] };
    for (const o of outcomes) {
      if (o.status !== 'fulfilled') continue;
      report.saved.push(o.value.saved);
      const r = o.value.resumed;
      if (r && 'reason' in r) report.failed.push(r);
      else if (r) report.resumed.push(r);
    }
    if (report.failed.length) runtime.log.error({ cluster: req.cluster, failed: report.failed }, 'saved VMs could not be resumed');
    return report;
  } finally {
    signal.removeEventListener('abort', cancelled);
  }
}

/**
 * The store barrier's resume: `cont` once the VM's state is durable and every host has marked its VMs paused.
 * Undefined (finishSaves resumes it) when the marks did not all come within the window, when the checkpoint
 * was abandoned or its bound passed meanwhile (then the undo or the watchdog resumes it), or on any failure.
 */
async function resumeOnceCut(runtime: HostRuntime, req: CaptureRequest, vm: string, saved: Promise<SavedState>, allMarked: () => Promise<'marked' | 'deadline'>, receivedAt: number): Promise<VmTimestamp | undefined> {
  try {
    await saved;
    if ((await allMarked()) !== 'marked') return undefined;
    runtime.watchdog.check(runtime.requireVm(req.cluster, vm), req.checkpointId, req.runId);
    return await resumeSaved(runtime, req, vm, receivedAt);
  } catch (err) {
    runtime.log.debug({ cluster: req.cluster, vm, err: err instanceof Error ? err.message : String(err) }, 'no early resume; finishSaves or the undo resumes the VM');
    return undefined;
  }
}

/** `cont` of a VM whose state is durable; its lease is released only once the cont succeeded. */
async function resumeSaved(runtime: HostRuntime, req: Pick<FinishSavesRequest, 'cluster' | 'checkpointId'>, vm: string, receivedAt: number): Promise<VmTimestamp> {
  const record = runtime.requireVm(req.cluster, vm);
  const qmp = await runtime.qmp(record);
  await testHook('save:before-cont', vm);
  const resumed = await resumeVm(qmp, vm); // a no-op on a VM running already
  runtime.watchdog.release(record, req.checkpointId);
  return { name: vm, at: Math.round(resumed.atMs), receivedAt };
}
