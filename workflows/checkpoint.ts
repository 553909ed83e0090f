// checkpointCluster: the stop-and-save protocol (BRIEF.md, "Checkpoint").
//   prepare → pause barrier → freeze disks → save barrier → commit (manifest) → resume barrier
// Until the commit, any failure — an activity error, a dead host, the pause bound running out, a cancel —
// resumes every VM that may have been paused, removes the partial files and records why it failed.
import {
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  log,
  sleep,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import { checkpointInputSchema, type CheckpointInput } from '../common/workflow-inputs';
import { defaultCheckpointId } from '../common/names';
import type { Manifest, ManifestVm } from '../common/manifest';
import type { FrozenVm, PrepareReport, SavedState, VmTimestamp } from '../activities/host/types';
import { acquireCluster, releaseCluster } from './lock';
import { pauseLead, barrierLead, controllerActivities, hostActivities } from './proxies';
import { groupByHost, onEveryHost, onEveryHostSettled } from './hosts';
import { ProgressTracker } from './progress';
import { failWith, reasonOf, validateInput } from './validate';
import { taskQueueOf } from '../common/spec';
import { spread } from '../common/stats';
import { formatBytes, stateFiles, vmList, withSummary } from './summary';
import { storeLayout } from '../common/store-layout';

export interface CheckpointResult {
  cluster: string;
  checkpointId: string;
  manifest: string;
  /** First pause to last resume, as the hosts measured it. */
  downtimeMs: number;
  pauseSkewMs: number;
  resumeSkewMs: number;
  totalBytes: number;
  phases: Record<string, { start: number; end?: number }>;
  vms: Array<{ name: string; host: string; pausedAt: number; savedAt: number; resumedAt?: number; bytes: number }>;
  /** VMs that could not be resumed after the commit (the checkpoint itself is valid). */
  resumeFailures: string[];
}

/** Time between the pause bound running out and the moment we start undoing, kept for the undo itself. */
function undoMargin(boundMs: number): number {
  return Math.max(1000, Math.min(5000, Math.floor(boundMs / 10)));
}

export async function checkpointCluster(rawInput: CheckpointInput): Promise<CheckpointResult> {
  const input = validateInput(checkpointInputSchema, rawInput, 'checkpointCluster');
  const info = workflowInfo();
  const cluster = input.cluster;
  const checkpointId = input.checkpointId ?? defaultCheckpointId(Date.now(), uuid4());
  // Retried host steps recognise their own earlier work by the run, never by the checkpoint id alone.
  const runId = info.runId;
  const progress = new ProgressTracker('checkpoint', cluster, checkpointId);
  const controller = controllerActivities();

  const lock = await acquireCluster(cluster, 'checkpoint', { checkpointId });
  const spec = lock.spec;
  const placement = lock.placement;
  const byHost = groupByHost(placement);
  const hosts = (host: string) => hostActivities(taskQueueOf(spec, host));
  const boundMs = spec.pauseBoundSeconds * 1000;
  progress.addVms(placement);

  const pauseAttempted = new Set<string>();
  let pauseSentAt = 0;
  let boundExceeded = false;
  let prepared = new Map<string, PrepareReport>();
  let paused = new Map<string, VmTimestamp[]>();
  let frozen = new Map<string, FrozenVm[]>();
  let saved = new Map<string, SavedState[]>();
  let manifestPath = '';

  const protocol = new CancellationScope();
  const deadline = new CancellationScope();
  const untilCommitted = protocol.run(async () => {
    progress.phase('prepare');
    await withSummary(controller.quick, `create checkpoint folder ${checkpointId} in ${spec.store}`).beginCheckpoint({ store: spec.store, cluster, checkpointId, workflowId: info.workflowId, runId: info.runId });
    const prepareSentAt = Date.now();
    prepared = await onEveryHost(byHost, (host, vms) =>
      withSummary(hosts(host).quick, `prepare ${vmList(vms)} on host ${host}`).prepareCheckpoint({ cluster, store: spec.store, checkpointId, vms }),
    );
    const needed = [...prepared.values()].flatMap((r) => r.vms).reduce((sum, vm) => sum + vm.ramBytes, 0);
    const free = Math.min(...[...prepared.values()].map((r) => r.storeFreeBytes));
    if (needed > free) {
      throw ApplicationFailure.nonRetryable(
        `not enough room in ${spec.store}: the VMs have ${needed} bytes of RAM to save, ${free} bytes are free`,
        'StoreFull',
      );
    }

    progress.phase('pause');
    // The bound is enforced from here on: when it runs out, the protocol scope is cancelled.
    deadline
      .run(async () => {
        await sleep(Math.max(0, boundMs - undoMargin(boundMs)), { summary: `pause bound of ${spec.pauseBoundSeconds} s: undo if not committed by then` });
        boundExceeded = true;
        protocol.cancel();
      })
      .catch(() => undefined); // cancelled once the commit is done
    for (const host of byHost.keys()) pauseAttempted.add(host);
    progress.vms(Object.keys(placement), 'pausing');
    pauseSentAt = Date.now();
    const pauseAt = pauseSentAt + pauseLead(prepareSentAt, [...prepared.values()].map((r) => r.receivedAt));
    paused = await onEveryHost(byHost, (host, vms) =>
      withSummary(hosts(host).quick, `pause ${vmList(vms)} on host ${host}`).pauseVms({ cluster, checkpointId, runId, vms, pauseBoundMs: boundMs, notBefore: pauseAt }),
    );
    progress.vms(Object.keys(placement), 'paused');

    progress.phase('freeze');
    const withDisks = new Map([...byHost].filter(([host]) => prepared.get(host)?.vms.some((vm) => vm.diskIds.length > 0)));
    frozen = await onEveryHost(withDisks, (host, vms) =>
      withSummary(hosts(host).quick, `freeze the disks of ${vmList(vms)} on host ${host}`).freezeDisks({ cluster, store: spec.store, checkpointId, runId, vms }),
    );
    progress.vms(Object.keys(placement), 'frozen');

    progress.phase('save');
    for (const report of prepared.values()) for (const vm of report.vms) progress.setBytes(vm.name, 0, vm.ramBytes);
    progress.vms(Object.keys(placement), 'saving');
    const transferBudget: Duration = `${Math.max(5, Math.ceil(boundMs / 1000))} seconds`;
    saved = await onEveryHost(byHost, (host, vms) =>
      withSummary(hosts(host).transfer(transferBudget), `save ${vmList(vms)} on host ${host} → ${stateFiles(checkpointId, vms)}`).saveVmStates({
        cluster,
        store: spec.store,
        checkpointId,
        runId,
        vms,
        progressWorkflowId: info.workflowId,
        ...(spec.stateCompression ? { compression: spec.stateCompression } : {}),
      }),
    );
    for (const states of saved.values()) for (const s of states) progress.setBytes(s.name, s.size, s.size);
    progress.vms(Object.keys(placement), 'saved');

    progress.phase('commit');
    const manifest = buildManifest();
    // The leases hold until the pause window ends (their deadlines are later than this): commit only inside it.
    manifestPath = (
      await withSummary(controller.local, `commit ${checkpointId}: manifest of ${manifest.vms.length} VMs, ${formatBytes(manifest.totalBytes)}`).commitCheckpoint({
        manifest,
        notAfter: pauseSentAt + boundMs - undoMargin(boundMs),
      })
    ).path;
  });

  function buildManifest(): Manifest {
    const vms: ManifestVm[] = [];
    for (const [host, report] of prepared) {
      const pauses = new Map((paused.get(host) ?? []).map((p) => [p.name, p]));
      const freezes = new Map((frozen.get(host) ?? []).map((f) => [f.name, f]));
      const saves = new Map((saved.get(host) ?? []).map((s) => [s.name, s]));
      for (const vm of report.vms) {
        const pause = pauses.get(vm.name);
        const save = saves.get(vm.name);
        if (!pause || !save) throw ApplicationFailure.nonRetryable(`no pause or save result for VM ${vm.name}`, 'InternalError');
        const freeze = freezes.get(vm.name);
        vms.push({
          name: vm.name,
          host,
          config: vm.config,
          machineType: vm.machineType,
          qemuVersion: report.qemuVersion,
          argv: vm.argv,
          state: { file: storeLayout.stateFileName(vm.name), size: save.size, sha256: save.sha256, ...(save.codec ? { codec: save.codec, rawSize: save.rawSize ?? 0 } : {}) },
          disks: (freeze?.disks ?? []).map((d) => ({ id: d.id, frozen: d.frozen, backing: d.backing })),
          ...(pause.consoleOffset !== undefined ? { console: { path: vm.consoleLog, offsetAtPause: pause.consoleOffset } } : {}),
          timings: {
            pausedAt: pause.at,
            ...(freeze ? { frozenAt: freeze.at } : {}),
            saveStartedAt: save.startedAt,
            savedAt: save.finishedAt,
          },
        });
      }
    }
    vms.sort((a, b) => a.name.localeCompare(b.name));
    const ph = progress.state.phases;
    const timing = (name: string) => ({ start: ph[name]?.start ?? 0, end: ph[name]?.end ?? ph[name]?.start ?? 0 });
    return {
      format: 'vccr-checkpoint',
      version: 1,
      cluster,
      checkpointId,
      workflowId: info.workflowId,
      runId: info.runId,
      createdAt: new Date(progress.state.startedAt).toISOString(),
      committedAt: new Date(Date.now()).toISOString(),
      spec,
      vms,
      phases: {
        prepare: timing('prepare'),
        pause: timing('pause'),
        freeze: timing('freeze'),
        save: timing('save'),
        commit: { start: ph['commit']?.start ?? Date.now() },
      },
      totalBytes: vms.reduce((sum, vm) => sum + vm.state.size, 0),
    };
  }

  try {
    await untilCommitted;
    deadline.cancel();
  } catch (err) {
    deadline.cancel();
    const phase = progress.state.phase;
    const reason = boundExceeded
      ? `the pause bound of ${spec.pauseBoundSeconds}s ran out during ${phase}`
      : isCancellation(err)
        ? 'cancelled'
        : reasonOf(err);
    progress.fail(reason);
    log.warn('checkpoint failed; undoing', { cluster, checkpointId, phase, reason });
    const leftovers: string[] = [];
    await CancellationScope.nonCancellable(async () => {
      progress.phase('abort');
      const pausedHosts = new Map([...byHost].filter(([host]) => pauseAttempted.has(host)));
      const resumes = await onEveryHostSettled(pausedHosts, (host, vms) =>
        withSummary(hosts(host).quick, `undo: resume ${vmList(vms)} on host ${host}`).resumeVms({ cluster, vms, checkpointId, abandon: true }),
      );
      const stuck = resumes.flatMap((r) =>
        r.ok ? r.value.failed.map((f) => `${f.name} on ${r.host}: ${f.reason}`) : [`every VM on host ${r.host}: ${reasonOf(r.error)}`],
      );
      progress.vms(Object.keys(placement), 'running');
      const cleanup = await withSummary(controller.quick, `undo: remove ${checkpointId}, record why it failed`)
        .abortCheckpoint({ store: spec.store, cluster, checkpointId, workflowId: info.workflowId, runId: info.runId, phase, reason })
        .catch((e: unknown) => ({ problems: [`store cleanup failed: ${reasonOf(e)}`] }));
      leftovers.push(...cleanup.problems);
      progress.endPhase();
      await releaseCluster(cluster, {
        outcome: 'failed',
        status: stuck.length ? 'degraded' : 'running',
        checkpointId,
        detail: reason,
      });
      if (stuck.length) {
        log.error('VMs could not be resumed', { vms: stuck });
        leftovers.push(`not resumed: ${stuck.join('; ')}`);
      }
    });
    const note = leftovers.length ? ` (and: ${leftovers.join('; ')})` : '';
    throw failWith(`checkpoint ${checkpointId} of cluster ${cluster} failed in ${phase}: ${reason}${note}`, 'CheckpointFailed', err);
  }

  // Committed: from here on the checkpoint exists whatever happens to the resume.
  progress.phase('resume');
  progress.vms(Object.keys(placement), 'resuming');
  // A timed barrier: every host issues its conts at the same moment, as late as the slowest host needs.
  const resumeSentAt = Date.now();
  const lead = barrierLead(pauseSentAt, [...paused.values()].flat().map((p) => p.receivedAt ?? pauseSentAt));
  const resumes = await onEveryHostSettled(byHost, (host, vms) =>
    withSummary(hosts(host).quick, `resume ${vmList(vms)} on host ${host}`).resumeVms({ cluster, vms, checkpointId, notBefore: resumeSentAt + lead }),
  );
  progress.endPhase();
  const resumedAt = new Map<string, number>();
  const resumeFailures: string[] = [];
  for (const r of resumes) {
    if (r.ok) {
      for (const t of r.value.resumed) resumedAt.set(t.name, t.at);
      resumeFailures.push(...r.value.failed.map((f) => `${f.name} on ${r.host}: ${f.reason}`));
    } else resumeFailures.push(...r.vms.map((vm) => `${vm} on ${r.host}: ${reasonOf(r.error)}`));
  }
  progress.vms(resumedAt.keys(), 'running');
  const allPauses = [...paused.values()].flat();
  const record = {
    checkpointId,
    vms: [...resumedAt].map(([name, at]) => ({ name, resumedAt: at })).sort((a, b) => a.name.localeCompare(b.name)),
    phases: { resume: { start: progress.state.phases['resume']?.start ?? 0, end: progress.state.phases['resume']?.end ?? 0 } },
  };
  await withSummary(controller.local, `record the resume times of ${checkpointId}`).recordResume({ store: spec.store, cluster, record });
  progress.phase('done');
  await releaseCluster(cluster, {
    outcome: 'completed',
    status: resumeFailures.length ? 'degraded' : 'running',
    checkpointId,
    ...(resumeFailures.length ? { detail: `not resumed: ${resumeFailures.join('; ')}` } : {}),
  });

  const pauseTimes = allPauses.map((p) => p.at);
  const resumeTimes = [...resumedAt.values()];
  const savedAll = new Map([...saved.values()].flat().map((s) => [s.name, s]));
  return {
    cluster,
    checkpointId,
    manifest: manifestPath,
    downtimeMs: resumeTimes.length && pauseTimes.length ? Math.max(...resumeTimes) - Math.min(...pauseTimes) : 0,
    pauseSkewMs: spread(pauseTimes),
    resumeSkewMs: spread(resumeTimes),
    totalBytes: [...savedAll.values()].reduce((sum, s) => sum + s.size, 0),
    phases: progress.state.phases,
    vms: allPauses
      .map((p) => ({
        name: p.name,
        host: placement[p.name] ?? '',
        pausedAt: p.at,
        savedAt: savedAll.get(p.name)?.finishedAt ?? 0,
        ...(resumedAt.has(p.name) ? { resumedAt: resumedAt.get(p.name) as number } : {}),
        bytes: savedAll.get(p.name)?.size ?? 0,
      }))
      .sort((a, b) => a.name.localeCompare(b.name)),
    resumeFailures,
  };
}
