// restartCluster: the restart protocol (BRIEF.md, "Restart").
//   validate manifest and every checksum (before touching anything) → the old VM processes are gone
//   → launch each VM from its recorded configuration, paused, waiting for its state, on a fresh overlay
//   over its frozen disks → load every state (load barrier) → cont all together.
import { ApplicationFailure, CancellationScope, log, patched, uuid4, workflowInfo } from '@temporalio/workflow';
import { restartInputSchema, type RestartInput } from '../common/workflow-inputs';
import { taskQueueOf, type ClusterSpec, type ResolvedVm } from '../common/spec';
import type { Manifest } from '../common/manifest';
import type { VmTimestamp } from '../activities/host/types';
import { acquireCluster, releaseCluster } from './lock';
import { controllerActivities, hostActivities } from './proxies';
import { barrierLead, groupByHost, onEveryHost, onEveryHostSettled } from './barriers';
import { ProgressTracker } from './progress';
import { failWith, reasonOf, validateInput } from './validate';
import type { AcquireReply } from '../common/messages';
import { spread } from '../common/stats';
import { stateFiles, vmList, withSummary } from './summary';

export interface RestartResult {
  cluster: string;
  checkpointId: string;
  /** Restore time: start of the launch phase to the last VM resumed. */
  restoreMs: number;
  resumeSkewMs: number;
  phases: Record<string, { start: number; end?: number }>;
  vms: Array<{ name: string; host: string; loadedAt: number; resumedAt: number }>;
  /** Old hosts that could not be reached (allowed only for hosts remapped away). */
  unreachableHosts: string[];
}

export async function restartCluster(rawInput: RestartInput): Promise<RestartResult> {
  const input = validateInput(restartInputSchema, rawInput, 'restartCluster');
  const info = workflowInfo();
  const cluster = input.cluster;
  const controller = controllerActivities();
  const progress = new ProgressTracker('restart', cluster, input.checkpointId);

  let lock: AcquireReply;
  try {
    lock = await acquireCluster(cluster, 'restart', input.checkpointId ? { checkpointId: input.checkpointId } : {});
  } catch (err) {
    // No cluster record (it was lost or never existed here): a store path lets us rebuild it from the manifest.
    if (!input.store || !reasonOf(err).startsWith('unknown cluster')) throw err;
    const manifest = await withSummary(controller.quick, `read the manifest of ${input.checkpointId ?? 'the newest checkpoint'} in ${input.store}`).findCheckpoint({ store: input.store, cluster, ...(input.checkpointId ? { checkpointId: input.checkpointId } : {}) });
    lock = await acquireCluster(cluster, 'restart', { spec: manifest.spec, create: true, checkpointId: manifest.checkpointId });
  }
  const store = input.store ?? lock.spec.store;
  const oldPlacement = lock.placement;

  let manifest: Manifest;
  let targets = new Map<string, string[]>();
  let placement: Record<string, string> = {};
  let spec: ClusterSpec = lock.spec;
  const unreachableHosts: string[] = [];
  const hosts = (host: string) => hostActivities(taskQueueOf(spec, host));
  let launchStartedAt = 0;
  try {
    progress.phase('validate');
    manifest = await withSummary(controller.quick, `read the manifest of ${input.checkpointId ?? 'the newest checkpoint'}`).findCheckpoint({ store, cluster, ...(input.checkpointId ? { checkpointId: input.checkpointId } : {}) });
    spec = { ...manifest.spec, hosts: { ...manifest.spec.hosts, ...lock.spec.hosts } };
    const checkpointId = manifest.checkpointId;
    progress.setCheckpointId(checkpointId);
    const manifestHosts = new Set(manifest.vms.map((vm) => vm.host));
    for (const from of Object.keys(input.hostMap)) {
      if (!manifestHosts.has(from)) {
        throw ApplicationFailure.nonRetryable(
          `--host ${from}=${input.hostMap[from]}: checkpoint ${checkpointId} has no VMs on host ${from} (hosts: ${[...manifestHosts].join(', ')})`,
          'InvalidInput',
        );
      }
    }
    placement = Object.fromEntries(manifest.vms.map((vm) => [vm.name, input.hostMap[vm.host] ?? vm.host]));
    targets = groupByHost(placement);
    const deadTargets = input.unreachable.filter((h) => targets.has(h));
    if (deadTargets.length) {
      throw ApplicationFailure.nonRetryable(`VMs would be placed on unreachable host(s) ${deadTargets.join(', ')}: remap them with hostMap`, 'InvalidInput');
    }
    progress.addVms(placement);
    progress.vms(Object.keys(placement), 'verifying');
    const byName = new Map(manifest.vms.map((vm) => [vm.name, vm]));
    // Hosts read state files only by checkpoint and VM name (never a path a caller could point elsewhere).
    await onEveryHost(targets, (host, vms) =>
      withSummary(hosts(host).transfer('1 hour'), `verify ${stateFiles(checkpointId, vms)} on host ${host} (sha256)`).verifyStateFiles({
        store,
        cluster,
        checkpointId,
        files: vms.map((vm) => ({ vm, size: byName.get(vm)?.state.size ?? 0, sha256: byName.get(vm)?.state.sha256 ?? '' })),
      }),
    );

    progress.phase('stop-old');
    const allVms = manifest.vms.map((vm) => vm.name);
    const remappedAway = new Set(Object.keys(input.hostMap).filter((h) => input.hostMap[h] !== h));
    const candidates = new Set([...Object.values(oldPlacement), ...manifestHosts, ...targets.keys()]);
    for (const host of input.unreachable) {
      candidates.delete(host);
      unreachableHosts.push(host);
    }
    const everywhere = new Map([...candidates].map((h) => [h, allVms]));
    const gone = await onEveryHostSettled(everywhere, (host, vms) => withSummary(hosts(host).quick, `${input.force ? 'stop' : 'check'} old VMs on host ${host}`).ensureVmsGone({ cluster, vms, force: input.force }));
    for (const r of gone) {
      if (r.ok) continue;
      const why = reasonOf(r.error);
      const unreachable = /schedule.?to.?start|timed? ?out/i.test(why);
      if (unreachable && remappedAway.has(r.host)) {
        unreachableHosts.push(r.host);
        log.warn('old host unreachable; its VMs were remapped away', { host: r.host });
        continue;
      }
      throw ApplicationFailure.nonRetryable(unreachable ? `host ${r.host} is unreachable (${why}); remap its VMs with --host ${r.host}=<other>` : why, 'StopOldFailed');
    }

    progress.phase('launch');
    launchStartedAt = Date.now();
    progress.vms(Object.keys(placement), 'launching');
    const operationId = `restore-${checkpointId}-${uuid4().slice(0, 8)}`.slice(0, 100);
    const frozenDisks = Object.fromEntries(
      manifest.vms.map((vm) => [vm.name, Object.fromEntries(vm.disks.map((d) => [d.id, [d.frozen, ...d.backing]]))]),
    );
    await onEveryHost(targets, (host, vms) =>
      withSummary(hosts(host).launch, `launch ${vmList(vms)} on host ${host}, waiting for ${checkpointId}`).launchVms({
        cluster,
        store,
        operationId,
        vms: vms.map((vm): ResolvedVm => ({ ...(byName.get(vm)?.config as ResolvedVm), host })),
        restore: { checkpointId, frozenDisks },
      }),
    );

    progress.phase('load');
    progress.vms(Object.keys(placement), 'loading');
    for (const vm of manifest.vms) progress.setBytes(vm.name, 0, vm.state.size);
    const loadSentAt = Date.now();
    const loaded = await onEveryHost(targets, (host, vms) =>
      withSummary(hosts(host).transfer('1 hour'), `load ${vmList(vms)} on host ${host} ← ${stateFiles(checkpointId, vms)}`).loadVmStates({
        store,
        cluster,
        checkpointId,
        vms: vms.map((vm) => {
          const state = byName.get(vm)?.state;
          return { name: vm, size: state?.size ?? 0, sha256: state?.sha256 ?? '', ...(state?.codec ? { codec: state.codec } : {}) };
        }),
        progressWorkflowId: info.workflowId,
      }),
    );
    progress.vms(Object.keys(placement), 'loaded');

    progress.phase('resume');
    // Timed barrier, as for a checkpoint: all hosts cont together.
    const resumeAt = Date.now() + barrierLead(loadSentAt, [...loaded.values()].flat().map((t) => t.receivedAt ?? loadSentAt));
    progress.vms(Object.keys(placement), 'resuming');
    const resumed = await onEveryHost(targets, async (host, vms) => {
      const report = await withSummary(hosts(host).quick, `resume ${vmList(vms)} on host ${host}`).resumeVms({ cluster, vms, notBefore: resumeAt });
      if (report.failed.length) {
        throw ApplicationFailure.nonRetryable(`could not resume ${report.failed.map((f) => `${f.name} (${f.reason})`).join(', ')}`, 'ResumeFailed');
      }
      return report.resumed;
    });
    progress.vms(Object.keys(placement), 'running');
    const collectGarbage = () =>
      withSummary(controller.quick, `remove disk layers nothing needs any more`)
        .collectGarbage({ store, cluster })
        .catch((err: unknown) => log.warn('garbage collection failed', { err: reasonOf(err) }));
    // Still under the cluster lock: a checkpoint freezing disks meanwhile would add layers GC has not seen.
    // (Executions started before this change collect after releasing the lock, as they did then.)
    const underLock = patched('gc-under-lock');
    if (underLock) await collectGarbage();
    progress.phase('done');
    await releaseCluster(cluster, { outcome: 'completed', status: 'running', placement, checkpointId });
    if (!underLock) await collectGarbage();

    const loadedAt = new Map([...loaded.values()].flat().map((t: VmTimestamp) => [t.name, t.at]));
    const resumedAt = new Map([...resumed.values()].flat().map((t: VmTimestamp) => [t.name, t.at]));
    const resumeTimes = [...resumedAt.values()];
    return {
      cluster,
      checkpointId,
      restoreMs: resumeTimes.length ? Math.max(...resumeTimes) - launchStartedAt : 0,
      resumeSkewMs: spread(resumeTimes),
      phases: progress.state.phases,
      vms: Object.keys(placement)
        .sort()
        .map((name) => ({ name, host: placement[name] ?? '', loadedAt: loadedAt.get(name) ?? 0, resumedAt: resumedAt.get(name) ?? 0 })),
      unreachableHosts,
    };
  } catch (err) {
    const phase = progress.state.phase;
    const reason = reasonOf(err);
    progress.fail(reason);
    log.warn('restart failed', { cluster, phase, reason });
    await CancellationScope.nonCancellable(async () => {
      // Nothing was touched before the launch phase; from then on, end what this restart started.
      const touched = launchStartedAt > 0;
      if (touched) {
        progress.phase('undo');
        await onEveryHostSettled(targets, (host, vms) => withSummary(hosts(host).quick, `undo: kill ${vmList(vms)} on host ${host}`).stopVms({ cluster, vms, mode: 'kill' }));
      }
      await releaseCluster(cluster, { outcome: 'failed', ...(touched ? { status: 'down' as const } : {}), detail: reason });
    });
    throw failWith(`restart of cluster ${cluster} failed in ${phase}: ${reason}`, 'RestartFailed', err);
  }
}
