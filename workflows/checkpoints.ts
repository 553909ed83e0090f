// The checkpoint store as workflows: list, show and verify (read-only) and delete (under the cluster lock,
// so it can never race a restart reading the same checkpoint).
import { ApplicationFailure } from '@temporalio/workflow';
import { checkpointRefInputSchema as oneInput, storeInputSchema as storeInput, type CheckpointRefInput, type StoreInput } from '../common/workflow-inputs';
import { controllerActivities } from './proxies';
import { acquireCluster, releaseCluster } from './lock';
import { reasonOf, validateInput } from './validate';

async function storeOf(cluster: string, store: string | undefined): Promise<string> {
  if (store) return store;
  const state = await controllerActivities().quick.getClusterState({ cluster });
  if (!state?.spec) {
    throw ApplicationFailure.nonRetryable(`unknown cluster ${cluster} (give the store path to look it up without a cluster record)`, 'UnknownCluster');
  }
  return state.spec.store;
}

export async function listCheckpoints(raw: StoreInput) {
  const input = validateInput(storeInput, raw, 'listCheckpoints');
  const store = await storeOf(input.cluster, input.store);
  return controllerActivities().quick.listCheckpoints({ store, cluster: input.cluster });
}

export async function showCheckpoint(raw: CheckpointRefInput) {
  const input = validateInput(oneInput, raw, 'showCheckpoint');
  const store = await storeOf(input.cluster, input.store);
  return controllerActivities().quick.showCheckpoint({ store, cluster: input.cluster, checkpointId: input.checkpointId });
}

export async function verifyCheckpoint(raw: CheckpointRefInput) {
  const input = validateInput(oneInput, raw, 'verifyCheckpoint');
  const store = await storeOf(input.cluster, input.store);
  return controllerActivities().long.verifyCheckpoint({ store, cluster: input.cluster, checkpointId: input.checkpointId });
}

export async function deleteCheckpoint(raw: CheckpointRefInput) {
  const input = validateInput(oneInput, raw, 'deleteCheckpoint');
  const lock = await acquireCluster(input.cluster, 'delete', { checkpointId: input.checkpointId });
  const store = input.store ?? lock.spec.store;
  try {
    const report = await controllerActivities().quick.deleteCheckpoint({ store, cluster: input.cluster, checkpointId: input.checkpointId });
    await releaseCluster(input.cluster, { outcome: 'completed', detail: `deleted ${input.checkpointId}` });
    return report;
  } catch (err) {
    await releaseCluster(input.cluster, { outcome: 'failed', detail: reasonOf(err) });
    throw err;
  }
}
