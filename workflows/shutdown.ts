// shutdownCluster: ends every VM of the cluster (quit, or kill as a crash would) and marks it down.
import { ApplicationFailure } from '@temporalio/workflow';
import { shutdownInputSchema, type ShutdownInput } from '../common/workflow-inputs';
import { taskQueueOf } from '../common/spec';
import { acquireCluster, releaseCluster } from './lock';
import { hostActivities } from './proxies';
import { groupByHost, onEveryHostSettled } from './barriers';
import { ProgressTracker } from './progress';
import { reasonOf, validateInput } from './validate';
import { vmList, withSummary } from './summary';

export interface ShutdownResult {
  cluster: string;
  stopped: string[];
  /** Hosts that could not be reached: their VMs may still run. */
  unreachable: Array<{ host: string; vms: string[]; reason: string }>;
}

export async function shutdownCluster(rawInput: ShutdownInput): Promise<ShutdownResult> {
  const input = validateInput(shutdownInputSchema, rawInput, 'shutdownCluster');
  const cluster = input.cluster;
  const progress = new ProgressTracker('shutdown', cluster);
  const lock = await acquireCluster(cluster, 'shutdown');
  progress.addVms(lock.placement);
  progress.phase('stop');
  progress.vms(Object.keys(lock.placement), 'stopping');
  const results = await onEveryHostSettled(groupByHost(lock.placement), (host, vms) =>
    withSummary(hostActivities(taskQueueOf(lock.spec, host)).quick, `${input.mode === 'kill' ? 'kill' : 'stop'} ${vmList(vms)} on host ${host}`).stopVms({ cluster, vms, mode: input.mode }),
  );
  const stopped = results.flatMap((r) => (r.ok ? r.value.filter((v) => v.wasRunning).map((v) => v.name) : []));
  const unreachable = results.flatMap((r) => (r.ok ? [] : [{ host: r.host, vms: r.vms, reason: reasonOf(r.error) }]));
  progress.vms(Object.keys(lock.placement), 'stopped');
  progress.phase('done');
  await releaseCluster(cluster, {
    outcome: unreachable.length ? 'failed' : 'completed',
    status: unreachable.length ? 'degraded' : 'down',
    ...(unreachable.length ? { detail: `unreachable: ${unreachable.map((u) => u.host).join(', ')}` } : {}),
  });
  if (unreachable.length) {
    throw ApplicationFailure.nonRetryable(
      `shutdown of ${cluster} incomplete: ${unreachable.map((u) => `host ${u.host} (${u.vms.join(', ')}): ${u.reason}`).join('; ')}`,
      'ShutdownIncomplete',
    );
  }
  return { cluster, stopped: stopped.sort(), unreachable };
}
