// The phases of restartCluster (restart.ts), each a function with explicit inputs and outputs:
//   begin → validate → stop-old → launch → load → resume → finish;  undo on any failure
// Every phase takes the RestartRun (the request, the lock, the progress it reports to) and, from validate on,
// the RestartPlan validate made; the decisions themselves are the pure functions of restart-plan.ts. A
// phase's activity calls and search-attribute updates are commands that recorded histories replay: keep
// their order (ARCHITECTURE.md, "Upgrading the controller").
import { ApplicationFailure, CancellationScope, log, patched, uuid4, workflowInfo } from '@temporalio/workflow';
import type { Manifest } from '../common/manifest';
import type { AcquireReply } from '../common/messages';
import { taskQueueOf, type ClusterSpec } from '../common/spec';
import type { restartInputSchema } from '../common/workflow-inputs';
import type { z } from 'zod';
import type { VmTimestamp } from '../activities/host/types';
import { acquireCluster, releaseCluster } from './lock';
import { controllerActivities, hostActivities } from './proxies';
import { barrierLead, onEveryHost, onEveryHostSettled } from './barriers';
import { ProgressTracker } from './progress';
import { failWith, reasonOf } from './validate';
import { stateFiles, vmList, withSummary } from './summary';
import { frozenDisksOf, hostsToClear, placementOf, stateOf, unreachableAfterStopOld, vmsToLaunch } from './restart-plan';

/** The validated request. */
export type Request = z.output<typeof restartInputSchema>;

/** The request, the lock and where the checkpoints are: fixed once the lock is held. */
export interface RestartRun {
  cluster: string;
  request: Request;
  workflowId: string;
  lock: AcquireReply;
  store: string;
  progress: ProgressTracker;
  controller: ReturnType<typeof controllerActivities>;
}

/** What validate found: the checkpoint, the spec to restart with, and where each VM goes. */
export interface RestartPlan {
  manifest: Manifest;
  checkpointId: string;
  /** The manifest's spec, with the hosts as the cluster record knows them now. */
  spec: ClusterSpec;
  placement: Record<string, string>;
  /** Host → the VMs it brings back. */
  targets: Map<string, string[]>;
  hosts: (host: string) => ReturnType<typeof hostActivities>;
}

/** The progress and the cluster lock; a lost cluster record is rebuilt from the manifest when the store is given. */
export async function begin(request: Request): Promise<RestartRun> {
  const info = workflowInfo();
  const cluster = request.cluster;
  const controller = controllerActivities();
  const progress = new ProgressTracker('restart', cluster, request.checkpointId);
  const checkpoint = request.checkpointId ? { checkpointId: request.checkpointId } : {};
  let lock: AcquireReply;
  try {
    lock = await acquireCluster(cluster, 'restart', checkpoint);
  } catch (err) {
    // No cluster record (it was lost or never existed here): a store path lets us rebuild it from the manifest.
    if (!request.store || !reasonOf(err).startsWith('unknown cluster')) throw err;
    const manifest = await withSummary(controller.quick, `read the manifest of ${request.checkpointId ?? 'the newest checkpoint'} in ${request.store}`).findCheckpoint({
      store: request.store,
      cluster,
      ...checkpoint,
    });
    lock = await acquireCluster(cluster, 'restart', { spec: manifest.spec, create: true, checkpointId: manifest.checkpointId });
  }
  return { cluster, request, workflowId: info.workflowId, lock, store: request.store ?? lock.spec.store, progress, controller };
}

/** Before anything is touched: the manifest, the placement, and every state file's sha256 on its target host. */
export async function validate(run: RestartRun): Promise<RestartPlan> {
  const { cluster, request, store, progress } = run;
  progress.phase('validate');
  const manifest = await withSummary(run.controller.quick, `read the manifest of ${request.checkpointId ?? 'the newest checkpoint'}`).findCheckpoint({
    store,
    cluster,
    ...(request.checkpointId ? { checkpointId: request.checkpointId } : {}),
  });
  const spec: ClusterSpec = { ...manifest.spec, hosts: { ...manifest.spec.hosts, ...run.lock.spec.hosts } };
  const checkpointId = manifest.checkpointId;
  progress.setCheckpointId(checkpointId);
  const { placement, targets } = placementOf(manifest, request);
  const plan: RestartPlan = { manifest, checkpointId, spec, placement, targets, hosts: (host) => hostActivities(taskQueueOf(spec, host)) };
  progress.addVms(placement);
  progress.vms(Object.keys(placement), 'verifying');
  // Hosts read state files only by checkpoint and VM name (never a path a caller could point elsewhere).
  await onEveryHost(targets, (host, vms) =>
    withSummary(plan.hosts(host).transfer('1 hour'), `verify ${stateFiles(checkpointId, vms)} on host ${host} (sha256)`).verifyStateFiles({
      store,
      cluster,
      checkpointId,
      files: vms.map((vm) => {
        const { size, sha256 } = stateOf(manifest, vm);
        return { vm, size, sha256 };
      }),
    }),
  );
  return plan;
}

/** Every host that may run the cluster's VMs confirms they are gone (or, with force, stops them). Returns the unreachable hosts. */
export async function stopOld(run: RestartRun, plan: RestartPlan): Promise<string[]> {
  const { cluster, request } = run;
  run.progress.phase('stop-old');
  const allVms = plan.manifest.vms.map((vm) => vm.name);
  const everywhere = new Map(hostsToClear(plan.manifest, run.lock.placement, plan.targets, request.unreachable).map((h) => [h, allVms]));
  const gone = await onEveryHostSettled(everywhere, (host, vms) =>
    withSummary(plan.hosts(host).quick, `${request.force ? 'stop' : 'check'} old VMs on host ${host}`).ensureVmsGone({ cluster, vms, force: request.force }),
  );
  const unreachable = unreachableAfterStopOld(gone, request.hostMap);
  for (const host of unreachable) log.warn('old host unreachable; its VMs were remapped away', { host });
  return [...request.unreachable, ...unreachable];
}

/** Each VM from its recorded configuration, paused and waiting for its state, on a fresh overlay over its frozen disks. */
export async function launch(run: RestartRun, plan: RestartPlan): Promise<void> {
  const { cluster, store, progress } = run;
  const { checkpointId, manifest } = plan;
  progress.phase('launch');
  progress.vms(Object.keys(plan.placement), 'launching');
  const operationId = `restore-${checkpointId}-${uuid4().slice(0, 8)}`.slice(0, 100);
  const frozenDisks = frozenDisksOf(manifest);
  await onEveryHost(plan.targets, (host, vms) =>
    withSummary(plan.hosts(host).launch, `launch ${vmList(vms)} on host ${host}, waiting for ${checkpointId}`).launchVms({
      cluster,
      store,
      operationId,
      vms: vmsToLaunch(manifest, host, vms),
      restore: { checkpointId, frozenDisks },
    }),
  );
}

export interface Loaded {
  /** Host → each VM's load time (and when its host received the step). */
  vms: Map<string, VmTimestamp[]>;
  sentAt: number;
}

/** Marks executions whose hosts resume on the store barrier once every VM has loaded. */
const RESTORE_STORE_BARRIER = 'restore-store-barrier';

/**
 * The load barrier: every state file streamed into its VM (hashed again on the way). With the store
 * barrier, each host also resumes its VMs as soon as every host has marked its VMs loaded on the store.
 */
export async function load(run: RestartRun, plan: RestartPlan): Promise<Loaded> {
  const { cluster, store, progress } = run;
  const { checkpointId, manifest } = plan;
  progress.phase('load');
  progress.vms(Object.keys(plan.placement), 'loading');
  for (const vm of manifest.vms) progress.setBytes(vm.name, 0, vm.state.size);
  const barrier = patched(RESTORE_STORE_BARRIER) ? { resumeWhenAllLoaded: { hosts: [...plan.targets.keys()], runId: workflowInfo().runId } } : {};
  const sentAt = Date.now();
  const vms = await onEveryHost(plan.targets, (host, hostVms) =>
    withSummary(plan.hosts(host).transfer('1 hour'), `load ${vmList(hostVms)} on host ${host} ← ${stateFiles(checkpointId, hostVms)}`).loadVmStates({
      store,
      cluster,
      checkpointId,
      vms: hostVms.map((vm) => ({ name: vm, ...stateOf(manifest, vm) })),
      progressWorkflowId: run.workflowId,
      ...barrier,
    }),
  );
  progress.vms(Object.keys(plan.placement), 'loaded');
  return { vms, sentAt };
}

/**
 * The resume barrier, timed as for a checkpoint: all hosts cont together. Any VM that does not run fails the
 * restart. Where the store barrier resumed every VM already, there is nothing left to do but report that.
 */
export async function resume(run: RestartRun, plan: RestartPlan, loaded: Loaded): Promise<Map<string, VmTimestamp[]>> {
  const { progress } = run;
  progress.phase('resume');
  const early = resumedOnLoad(loaded);
  if (early) {
    progress.vms(Object.keys(plan.placement), 'running');
    return early;
  }
  const resumeAt = Date.now() + barrierLead(loaded.sentAt, [...loaded.vms.values()].flat().map((t) => t.receivedAt ?? loaded.sentAt));
  progress.vms(Object.keys(plan.placement), 'resuming');
  const resumed = await onEveryHost(plan.targets, async (host, vms) => {
    const report = await withSummary(plan.hosts(host).quick, `resume ${vmList(vms)} on host ${host}`).resumeVms({ cluster: run.cluster, vms, notBefore: resumeAt });
    if (report.failed.length) {
      throw ApplicationFailure.nonRetryable(`could not resume ${report.failed.map((f) => `${f.name} (${f.reason})`).join(', ')}`, 'ResumeFailed');
    }
    // A VM the store barrier resumed already ran from then on (this cont found it running).
    const earlier = new Map((loaded.vms.get(host) ?? []).map((v) => [v.name, v.resumedAt]));
    return report.resumed.map((r) => ({ ...r, at: earlier.get(r.name) ?? r.at }));
  });
  progress.vms(Object.keys(plan.placement), 'running');
  return resumed;
}

/** Host → each VM's resume time, when the store barrier resumed every VM during the load; else undefined. */
function resumedOnLoad(loaded: Loaded): Map<string, VmTimestamp[]> | undefined {
  const entries = [...loaded.vms];
  if (!entries.every(([, vms]) => vms.every((v) => v.resumedAt !== undefined))) return undefined;
  return new Map(entries.map(([host, vms]) => [host, vms.map((v) => ({ name: v.name, at: v.resumedAt ?? v.at, ...(v.receivedAt !== undefined ? { receivedAt: v.receivedAt } : {}) }))]));
}

/** Garbage collection, still under the cluster lock, then the lock back with where the VMs run now. */
export async function finish(run: RestartRun, plan: RestartPlan): Promise<void> {
  const { cluster, store } = run;
  const collectGarbage = () =>
    withSummary(run.controller.quick, `remove disk layers nothing needs any more`)
      .collectGarbage({ store, cluster })
      .catch((err: unknown) => log.warn('garbage collection failed', { err: reasonOf(err) }));
  // Still under the cluster lock: a checkpoint freezing disks meanwhile would add layers GC has not seen.
  // (Executions started before this change collect after releasing the lock, as they did then.)
  const underLock = patched('gc-under-lock');
  if (underLock) await collectGarbage();
  run.progress.phase('done');
  await releaseCluster(cluster, { outcome: 'completed', status: 'running', placement: plan.placement, checkpointId: plan.checkpointId });
  if (!underLock) await collectGarbage();
}

/**
 * A failed restart: nothing was touched before the launch phase; from then on, what this restart started
 * is killed and the cluster marked down. Returns the workflow's failure.
 */
export async function undo(run: RestartRun, plan: RestartPlan | undefined, err: unknown): Promise<ApplicationFailure> {
  const { cluster, progress } = run;
  const phase = progress.state.phase;
  const reason = reasonOf(err);
  progress.fail(reason);
  log.warn('restart failed', { cluster, phase, reason });
  await CancellationScope.nonCancellable(async () => {
    const touched = plan !== undefined && progress.state.phases['launch'] !== undefined;
    if (touched) {
      progress.phase('undo');
      await onEveryHostSettled(plan.targets, (host, vms) => withSummary(plan.hosts(host).quick, `undo: kill ${vmList(vms)} on host ${host}`).stopVms({ cluster, vms, mode: 'kill' }));
    }
    await releaseCluster(cluster, { outcome: 'failed', ...(touched ? { status: 'down' as const } : {}), detail: reason });
  });
  return failWith(`restart of cluster ${cluster} failed in ${phase}: ${reason}`, 'RestartFailed', err);
}
