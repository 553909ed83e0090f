// inspectCluster: asks every host about the cluster's VMs (process alive? QMP run state?). Read-only:
// it takes no lock, so it also works while another operation runs.
import { ApplicationFailure } from '@temporalio/workflow';
import { inspectInputSchema, type InspectInput } from '../common/workflow-inputs';
import { taskQueueOf } from '../common/spec';
import type { VmStatus } from '../activities/host/types';
import { controllerActivities, hostActivities } from './proxies';
import { groupByHost, onEveryHostSettled } from './barriers';
import { reasonOf, validateInput } from './validate';
import type { ClusterState } from '../common/messages';
import { vmList, withSummary } from './summary';

export interface InspectResult {
  cluster: string;
  state: ClusterState;
  vms: Array<VmStatus & { host: string }>;
}

export async function inspectCluster(rawInput: InspectInput): Promise<InspectResult> {
  const { cluster } = validateInput(inspectInputSchema, rawInput, 'inspectCluster');
  const state = await withSummary(controllerActivities().quick, `read the cluster record of ${cluster}`).getClusterState({ cluster });
  if (!state?.spec) throw ApplicationFailure.nonRetryable(`unknown cluster ${cluster}`, 'UnknownCluster');
  const spec = state.spec;
  const results = await onEveryHostSettled(groupByHost(state.placement), (host, vms) =>
    withSummary(hostActivities(taskQueueOf(spec, host)).quick, `ask host ${host} about ${vmList(vms)}`).inspectVms({ cluster, vms }),
  );
  const vms = results.flatMap((r) =>
    r.ok
      ? r.value.map((v) => ({ ...v, host: r.host }))
      : r.vms.map((name) => ({ name, host: r.host, known: false, alive: false, error: `host unreachable: ${reasonOf(r.error)}` })),
  );
  return { cluster, state, vms: vms.sort((a, b) => a.name.localeCompare(b.name)) };
}
