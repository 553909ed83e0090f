// The phases of checkpointCluster (checkpoint.ts), each a function with explicit inputs and outputs:
//   begin → prepare → capture → finishSaves → commit → finish;  undo on any failure before the commit
// Every phase takes the CheckpointRun (who, where, the activity proxies, the progress it reports to) and
// what earlier phases returned; the records they write are built by the pure functions of
// checkpoint-record.ts. A phase's activity calls, timers and search-attribute updates are commands that
// recorded histories replay: keep their order (ARCHITECTURE.md, "Upgrading the controller").
import { ApplicationFailure, CancellationScope, isCancellation, log, patched, sleep, uuid4, workflowInfo } from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { CheckpointInput } from '../common/workflow-inputs';
import { defaultCheckpointId } from '../common/names';
import { taskQueueOf } from '../common/spec';
import type { FrozenVm, PrepareReport, VmTimestamp } from '../activities/host/types';
import { acquireCluster, releaseCluster } from './lock';
import { controllerActivities, hostActivities } from './proxies';
import { groupByHost, onEveryHost, onEveryHostSettled, pauseLead } from './barriers';
import { ProgressTracker } from './progress';
import { failWith, reasonOf } from './validate';
import { formatBytes, stateFiles, vmList, withSummary } from './summary';
import { buildManifest, resumedFrom, resumeRecord, roomNeeded, type CheckpointIdentity, type PhaseReports, type Resumed } from './checkpoint-record';

/** Everything the phases share, fixed once the cluster lock is held. */
export interface CheckpointRun extends CheckpointIdentity {
  /** VM → host. */
  placement: Record<string, string>;
  /** Host → its VMs (sorted). */
  byHost: Map<string, string[]>;
  boundMs: number;
  progress: ProgressTracker;
  controller: ReturnType<typeof controllerActivities>;
  hosts: (host: string) => ReturnType<typeof hostActivities>;
}

/** The checkpoint's id and progress, and the cluster lock. */
export async function begin(input: CheckpointInput): Promise<CheckpointRun> {
  const info = workflowInfo();
  const cluster = input.cluster;
  const checkpointId = input.checkpointId ?? defaultCheckpointId(Date.now(), uuid4());
  const progress = new ProgressTracker('checkpoint', cluster, checkpointId);
  const controller = controllerActivities();
  const { spec, placement } = await acquireCluster(cluster, 'checkpoint', { checkpointId });
  progress.addVms(placement);
  return {
    cluster,
    checkpointId,
    // Retried host steps recognise their own earlier work by the run, never by the checkpoint id alone.
    workflowId: info.workflowId,
    runId: info.runId,
    spec,
    placement,
    byHost: groupByHost(placement),
    boundMs: spec.pauseBoundSeconds * 1000,
    progress,
    controller,
    hosts: (host) => hostActivities(taskQueueOf(spec, host)),
  };
}

/** Time between the pause bound running out and the moment we start undoing, kept for the undo itself. */
function undoMargin(boundMs: number): number {
  return Math.max(1000, Math.min(5000, Math.floor(boundMs / 10)));
}

/**
 * The pause bound as the workflow enforces it: armed when the capture phase begins, it cancels the protocol
 * an undo margin before the bound, unless the commit came first.
 */
export class PauseBound {
  readonly #protocol = new CancellationScope();
  readonly #timer = new CancellationScope();
  #armed = false;
  #exceeded = false;

  constructor(private readonly run: CheckpointRun) {}

  /** The capture phase has begun: VMs may be paused. */
  get armed(): boolean {
    return this.#armed;
  }

  /** The bound ran out (and cancelled the protocol). */
  get exceeded(): boolean {
    return this.#exceeded;
  }

  /** Runs the protocol where the bound can cancel it. Once it has ended, disarm() the bound. */
  enforce<T>(protocol: () => Promise<T>): Promise<T> {
    return this.#protocol.run(protocol);
  }

  /**
   * Cancels the timer. Call it right before the next phase (finish, or undo): the cancellation reaches the
   * timer a few microtasks later, so its command follows that phase's first commands — the order recorded
   * histories have, which replay must keep.
   */
  disarm(): void {
    this.#timer.cancel();
  }

  arm(): void {
    const { boundMs, spec } = this.run;
    this.#timer
      .run(async () => {
        await sleep(Math.max(0, boundMs - undoMargin(boundMs)), { summary: `pause bound of ${spec.pauseBoundSeconds} s: undo if not committed by then` });
        this.#exceeded = true;
        this.#protocol.cancel();
      })
      .catch(() => undefined); // cancelled once the commit is done
    this.#armed = true;
  }

  /** The last moment a commit may happen for a pause sent at `pauseSentAt` (before any lease deadline). */
  windowEnd(pauseSentAt: number): number {
    return pauseSentAt + this.run.boundMs - undoMargin(this.run.boundMs);
  }
}

export interface Prepared {
  reports: Map<string, PrepareReport>;
  /** When the prepare step went to the hosts (its dispatch latency times the pause). */
  sentAt: number;
}

/** The checkpoint folder, every host's checks and migration settings, and room for the RAM to save. */
export async function prepare(run: CheckpointRun): Promise<Prepared> {
  const { cluster, checkpointId, spec, progress } = run;
  progress.phase('prepare');
  await withSummary(run.controller.quick, `create checkpoint folder ${checkpointId} in ${spec.store}`).beginCheckpoint({
    store: spec.store,
    cluster,
    checkpointId,
    workflowId: run.workflowId,
    runId: run.runId,
  });
  const sentAt = Date.now();
  const reports = await onEveryHost(run.byHost, (host, vms) =>
    withSummary(run.hosts(host).quick, `prepare ${vmList(vms)} on host ${host}`).prepareCheckpoint({ cluster, store: spec.store, checkpointId, vms }),
  );
  const { needed, free } = roomNeeded(reports);
  if (needed > free) {
    throw ApplicationFailure.nonRetryable(`not enough room in ${spec.store}: the VMs have ${needed} bytes of RAM to save, ${free} bytes are free`, 'StoreFull');
  }
  return { reports, sentAt };
}

export interface Captured {
  /** Host → each VM's pause time (QEMU's STOP, and when its host received the step). */
  paused: Map<string, VmTimestamp[]>;
  /** Host → its VMs' frozen disks (VMs with disks only). */
  frozen: Map<string, FrozenVm[]>;
  /** When the capture went to the hosts: the pause window is measured from here. */
  sentAt: number;
}

/** Marks executions whose hosts resume through the store barrier; earlier ones wait for finishSaves. */
const STOP_STORE_BARRIER = 'stop-store-barrier';

/**
 * The pause barrier: every host stops its VMs at one instant, confirms them paused, freezes their disks and
 * starts their saves, all without a round trip through the workflow. Once every host has answered, every
 * VM of the cut is paused: the cut is fixed, and from then on any VM may resume. With the store barrier, a
 * host learns that from the other hosts' marks in the store and resumes each saved VM without waiting for us.
 */
export async function capture(run: CheckpointRun, prepared: Prepared, bound: PauseBound): Promise<Captured> {
  const { cluster, checkpointId, runId, spec, progress } = run;
  progress.phase('capture');
  bound.arm();
  for (const report of prepared.reports.values()) for (const vm of report.vms) progress.setBytes(vm.name, 0, vm.ramBytes);
  progress.vms(Object.keys(run.placement), 'pausing');
  const barrierHosts = patched(STOP_STORE_BARRIER) ? { barrierHosts: [...run.byHost.keys()] } : {};
  const sentAt = Date.now();
  const pauseAt = sentAt + pauseLead(prepared.sentAt, [...prepared.reports.values()].map((r) => r.receivedAt));
  const reports = await onEveryHost(run.byHost, (host, hostVms) =>
    withSummary(run.hosts(host).quick, `pause ${vmList(hostVms)} on host ${host}, freeze their disks, start their saves`).captureVms({
      cluster,
      store: spec.store,
      checkpointId,
      runId,
      vms: hostVms,
      pauseBoundMs: run.boundMs,
      notBefore: pauseAt,
      progressWorkflowId: run.workflowId,
      ...(spec.stateCompression ? { compression: spec.stateCompression } : {}),
      ...barrierHosts,
    }),
  );
  progress.vms(Object.keys(run.placement), 'saving');
  const paused = new Map([...reports].map(([host, r]) => [host, r.paused]));
  const frozen = new Map([...reports].filter(([, r]) => r.frozen.length > 0).map(([host, r]) => [host, r.frozen]));
  return { paused, frozen, sentAt };
}

/** What every step that writes state files is told: the checkpoint run, its VMs, where progress goes. */
export function transferRequest(run: CheckpointRun, vms: string[]) {
  return { cluster: run.cluster, store: run.spec.store, checkpointId: run.checkpointId, runId: run.runId, vms, progressWorkflowId: run.workflowId };
}

export interface Saved {
  /** Host → each VM's state file. */
  states: PhaseReports['saved'];
  resumed: Resumed;
}

/**
 * The saves, joined per host; each VM resumes as soon as its own state is durable (it was paused
 * throughout: the host checks). Called only after capture: every VM of the cut is paused by now, so a
 * resume cannot break it. Progress arrives as transferProgress signals.
 */
export async function finishSaves(run: CheckpointRun): Promise<Saved> {
  const { checkpointId, spec, progress } = run;
  progress.phase('save');
  const transferBudget: Duration = `${Math.max(5, Math.ceil(run.boundMs / 1000))} seconds`;
  const reports = await onEveryHost(run.byHost, async (host, vms) => {
    const report = await withSummary(run.hosts(host).transfer(transferBudget), `save ${vmList(vms)} on host ${host} → ${stateFiles(checkpointId, vms)}, resume each once saved`).finishSaves({
      ...transferRequest(run, vms),
      resumeEachWhenSaved: true,
      ...(spec.stateCompression ? { compression: spec.stateCompression } : {}),
    });
    for (const s of report.saved) progress.setBytes(s.name, s.size, s.size);
    progress.vms(report.resumed.map((r) => r.name), 'running');
    return report;
  });
  const states = new Map([...reports].map(([host, r]) => [host, r.saved]));
  return { states, resumed: resumedFrom([...reports].map(([host, value]) => ({ host, vms: run.byHost.get(host) ?? [], ok: true as const, value }))) };
}

/** The manifest, written atomically: from now on the checkpoint exists. Returns its path. */
export async function commit(run: CheckpointRun, reports: PhaseReports, notAfter?: number): Promise<string> {
  run.progress.phase('commit');
  const manifest = buildManifest(run, reports, run.progress.state, Date.now());
  // The leases hold until the pause window ends (their deadlines are later than this): commit only inside it.
  const { path } = await withSummary(run.controller.local, `commit ${run.checkpointId}: manifest of ${manifest.vms.length} VMs, ${formatBytes(manifest.totalBytes)}`).commitCheckpoint({
    manifest,
    ...(notAfter !== undefined ? { notAfter } : {}),
  });
  return path;
}

/** Records the resume times beside the manifest and gives the lock back. */
export async function finish(run: CheckpointRun, resumed: Resumed): Promise<void> {
  const { cluster, checkpointId, spec } = run;
  await withSummary(run.controller.local, `record the resume times of ${checkpointId}`).recordResume({
    store: spec.store,
    cluster,
    record: resumeRecord(checkpointId, resumed, run.progress.state),
  });
  run.progress.phase('done');
  const failures = resumed.failures;
  await releaseCluster(cluster, {
    outcome: 'completed',
    status: failures.length ? 'degraded' : 'running',
    checkpointId,
    ...(failures.length ? { detail: `not resumed: ${failures.join('; ')}` } : {}),
  });
}

/**
 * Undoes a checkpoint that failed before its commit, whatever the reason; returns the workflow's failure
 * (one line: the phase, the reason, and anything that could not be undone).
 */
export async function undo(run: CheckpointRun, bound: PauseBound, err: unknown): Promise<ApplicationFailure> {
  const { cluster, checkpointId, spec, progress } = run;
  bound.disarm();
  const phase = progress.state.phase;
  const reason = bound.exceeded ? `the pause bound of ${spec.pauseBoundSeconds}s ran out during ${phase}` : isCancellation(err) ? 'cancelled' : reasonOf(err);
  progress.fail(reason);
  log.warn('checkpoint failed; undoing', { cluster, checkpointId, phase, reason });
  // Every VM that may still be paused: every host, once the capture phase has begun.
  const pausedHosts = bound.armed ? run.byHost : new Map<string, string[]>();
  const leftovers = await CancellationScope.nonCancellable(() => undoSteps(run, pausedHosts, phase, reason));
  const note = leftovers.length ? ` (and: ${leftovers.join('; ')})` : '';
  return failWith(`checkpoint ${checkpointId} of cluster ${cluster} failed in ${phase}: ${reason}${note}`, 'CheckpointFailed', err);
}

/** Resume what may be paused, remove the files, record why it failed, release the lock; returns what is left. */
async function undoSteps(run: CheckpointRun, pausedHosts: Map<string, string[]>, phase: string, reason: string): Promise<string[]> {
  const { cluster, checkpointId, spec, progress } = run;
  progress.phase('abort');
  const resumes = await onEveryHostSettled(pausedHosts, (host, vms) =>
    withSummary(run.hosts(host).quick, `undo: resume ${vmList(vms)} on host ${host}`).resumeVms({ cluster, vms, checkpointId, abandon: true }),
  );
  const stuck = resumes.flatMap((r) => (r.ok ? r.value.failed.map((f) => `${f.name} on ${r.host}: ${f.reason}`) : [`every VM on host ${r.host}: ${reasonOf(r.error)}`]));
  progress.vms(Object.keys(run.placement), 'running');
  const cleanup = await withSummary(run.controller.quick, `undo: remove ${checkpointId}, record why it failed`)
    .abortCheckpoint({ store: spec.store, cluster, checkpointId, workflowId: run.workflowId, runId: run.runId, phase, reason })
    .catch((e: unknown) => ({ problems: [`store cleanup failed: ${reasonOf(e)}`] }));
  const leftovers = [...cleanup.problems];
  progress.endPhase();
  await releaseCluster(cluster, { outcome: 'failed', status: stuck.length ? 'degraded' : 'running', checkpointId, detail: reason });
  if (stuck.length) {
    log.error('VMs could not be resumed', { vms: stuck });
    leftovers.push(`not resumed: ${stuck.join('; ')}`);
  }
  return leftovers;
}
