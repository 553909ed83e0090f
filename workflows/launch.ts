// launchCluster: starts every VM of a spec on its host (all hosts at once) and records the cluster.
// If any VM cannot be started, the ones that were are stopped again: a cluster is up whole or not at all.
import { CancellationScope, log, uuid4 } from '@temporalio/workflow';
import { launchInputSchema, type LaunchInput } from '../common/workflow-inputs';
import { resolveVm, taskQueueOf, type ResolvedVm } from '../common/spec';
import type { LaunchedVm } from '../activities/host/types';
import { acquireCluster, releaseCluster } from './lock';
import { hostActivities } from './proxies';
import { groupByHost, onEveryHost, onEveryHostSettled } from './barriers';
import { ProgressTracker } from './progress';
import { failWith, reasonOf, validateInput } from './validate';
import { vmList, withSummary } from './summary';

export interface LaunchResult {
  cluster: string;
  vms: Array<{ name: string; host: string; pid: number; status: string; consoleLog: string }>;
}

export async function launchCluster(rawInput: LaunchInput): Promise<LaunchResult> {
  const { spec } = validateInput(launchInputSchema, rawInput, 'launchCluster');
  const cluster = spec.cluster;
  const progress = new ProgressTracker('launch', cluster);
  const placement = Object.fromEntries(spec.vms.map((vm) => [vm.name, vm.host]));
  progress.addVms(placement);
  await acquireCluster(cluster, 'launch', { spec, create: true });

  const resolved = new Map<string, ResolvedVm>(spec.vms.map((vm) => [vm.name, resolveVm(spec, vm)]));
  const byHost = groupByHost(placement);
  const operationId = `launch-${uuid4().slice(0, 8)}`;
  const hosts = (host: string) => hostActivities(taskQueueOf(spec, host));
  try {
    progress.phase('launch');
    progress.vms(Object.keys(placement), 'launching');
    const launched = await onEveryHost(byHost, (host, vms) =>
      withSummary(hosts(host).launch, `launch ${vmList(vms)} on host ${host}`).launchVms({
        cluster,
        store: spec.store,
        operationId,
        vms: vms.map((vm) => resolved.get(vm) as ResolvedVm),
      }),
    );
    progress.vms(Object.keys(placement), 'running');
    progress.phase('done');
    await releaseCluster(cluster, { outcome: 'completed', status: 'running', placement });
    return {
      cluster,
      vms: [...launched]
        .flatMap(([host, vms]) => vms.map((vm: LaunchedVm) => ({ name: vm.name, host, pid: vm.pid, status: vm.qmpStatus, consoleLog: vm.consoleLog })))
        .sort((a, b) => a.name.localeCompare(b.name)),
    };
  } catch (err) {
    const reason = reasonOf(err);
    progress.fail(reason);
    log.warn('launch failed; stopping what was started', { cluster, reason });
    await CancellationScope.nonCancellable(async () => {
      progress.phase('undo');
      await onEveryHostSettled(byHost, (host, vms) => withSummary(hosts(host).quick, `undo: kill ${vmList(vms)} on host ${host}`).stopVms({ cluster, vms, mode: 'kill' }));
      await releaseCluster(cluster, { outcome: 'failed', status: 'down', detail: reason });
    });
    throw failWith(`launching cluster ${cluster} failed: ${reason}`, 'LaunchFailed', err);
  }
}
