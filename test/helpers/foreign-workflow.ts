// A workflow that only a test registers: it asks host b's worker to act on a VM that host a launched,
// the way a confused or malicious controller might. The host must refuse.
import { proxyActivities, ApplicationFailure, ActivityFailure } from '@temporalio/workflow';
import type { HostActivities } from '../../activities/host';
import type { ResolvedVm } from '../../common/spec';
import { hostTaskQueue } from '../../common/ids';

export async function actOnForeignVm(input: { cluster: string; vm: string; otherHost: string; config: ResolvedVm }): Promise<string[]> {
  const host = proxyActivities<HostActivities>({
    taskQueue: hostTaskQueue(input.otherHost),
    startToCloseTimeout: '30 seconds',
    retry: { maximumAttempts: 1 },
  });
  const attempts: Array<[string, () => Promise<unknown>]> = [
    ['pauseVms', () => host.pauseVms({ cluster: input.cluster, checkpointId: 'x', runId: 'foreign', vms: [input.vm], pauseBoundMs: 5000 })],
    ['resumeVms', () => host.resumeVms({ cluster: input.cluster, vms: [input.vm] })],
    ['freezeDisks', () => host.freezeDisks({ cluster: input.cluster, store: '/tmp', checkpointId: 'x', runId: 'foreign', vms: [input.vm] })],
    ['launchVms', () => host.launchVms({ cluster: input.cluster, store: '/tmp', operationId: 'hijack', vms: [input.config] })],
    ['captureVms', () => host.captureVms({ cluster: input.cluster, store: '/tmp', checkpointId: 'x', runId: 'foreign', vms: [input.vm], pauseBoundMs: 5000, progressWorkflowId: 'x' })],
    ['finishSaves', () => host.finishSaves({ cluster: input.cluster, store: '/tmp', checkpointId: 'x', runId: 'foreign', vms: [input.vm], progressWorkflowId: 'x', resumeEachWhenSaved: true })],
  ];
  const refusals: string[] = [];
  for (const [name, attempt] of attempts) {
    try {
      const result = await attempt();
      refusals.push(`${name}: ACCEPTED ${JSON.stringify(result)}`);
    } catch (err) {
      const cause = err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause : undefined;
      refusals.push(`${name}: ${cause?.type ?? 'error'}: ${cause?.message ?? String(err)}`);
    }
  }
  return refusals;
}
