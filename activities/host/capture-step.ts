// Stop mode's host side of a checkpoint, in two steps (ARCHITECTURE.md, "Checkpoint"):
//   captureVms   at the barrier's instant, each VM's stop (lease re-checked right before), its pause
//                confirmed, its disks frozen, its save started in the background; returns pause and freeze
//                results at once, without waiting for the I/O
//   finishSaves  joins the saves; with resumeEachWhenSaved, `cont`s each VM as soon as its own state file
//                is durable — the workflow calls it only once every VM of the cut has reported its pause
// No workflow round trip lies between a VM's stop and its save, and none between its save and its cont.
import { Context } from '@temporalio/activity';
import { testHook } from '../test-hooks';
import { freezeVm, pauseAtBarrier, requirePaused } from './checkpoint-steps';
import { BackgroundSaves } from './background-saves';
import { hostNow } from './clock';
import { consoleSize } from './launch';
import { resumeVm } from './migration';
import type { ProgressReporter } from './progress';
import type { HostRuntime } from './runtime';
import { saveVmState } from './save-step';
import type { CaptureReport, CaptureRequest, FinishSavesReport, FinishSavesRequest, FrozenVm, SavedState, SaveRequest, VmTimestamp } from './types';

export async function captureVms(runtime: HostRuntime, req: CaptureRequest, progress: ProgressReporter): Promise<CaptureReport> {
  const receivedAt = hostNow();
  const frozen: FrozenVm[] = [];
  const paused = await pauseAtBarrier(runtime, req, async (record, qmp, stopped): Promise<VmTimestamp> => {
    // A retried capture finds the VM stopped already (no STOP event): its run state is what counts.
    await requirePaused(qmp, record.name, 'after its stop');
    const offset = consoleSize(record);
    if (record.disks.length) {
      frozen.push(await runtime.exclusive(req.cluster, record.name, () => freezeVm(runtime, req, runtime.requireVm(req.cluster, record.name))));
    }
    void backgroundSave(runtime, req, record.name, progress);
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
        const saved = await backgroundSave(runtime, req, vm, progress).finally(() => runtime.saves.forget(keys[i] ?? ''));
        if (!req.resumeEachWhenSaved) return { saved };
        const resumed = await resumeSaved(runtime, req, vm, receivedAt).catch((err: unknown) => ({ name: vm, reason: err instanceof Error ? err.message : String(err) }));
        return { saved, resumed };
      }),
    );
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

/** `cont` of a VM whose state is durable; its lease is released only once the cont succeeded. */
async function resumeSaved(runtime: HostRuntime, req: FinishSavesRequest, vm: string, receivedAt: number): Promise<VmTimestamp> {
  const record = runtime.requireVm(req.cluster, vm);
  const qmp = await runtime.qmp(record);
  await testHook('save:before-cont', vm);
  const resumed = await resumeVm(qmp, vm); // a no-op on a VM running already
  runtime.watchdog.release(record, req.checkpointId);
  return { name: vm, at: Math.round(resumed.atMs), receivedAt };
}
