// The checkpoint store as workflows: list, show and verify (read-only) and delete (under the cluster lock,
// so it can never race a restart reading the same checkpoint).
import { ApplicationFailure } from '@temporalio/workflow';
import { checkpointRefInputSchema as oneInput, storeInputSchema as storeInput, type CheckpointRefInput, type StoreInput } from '../common/workflow-inputs';
import { controllerActivities } from './proxies';
import { acquireCluster, releaseCluster } from './lock';
import { reasonOf, validateInput } from './validate';
import { withSummary } from './summary';

async function storeOf(cluster: string, store: string | undefined): Promise<string> {
  if (store) return store;
  const state = await withSummary(controllerActivities().quick, `read the store path of ${cluster} from its record`).getClusterState({ cluster });
  if (!state?.spec) {
    throw ApplicationFailure.nonRetryable(`unknown cluster ${cluster} (give the store path to look it up without a cluster record)`, 'UnknownCluster');
  }
  return state.spec.store;
}

export async function listCheckpoints(raw: StoreInput) {
  const input = validateInput(storeInput, raw, 'listCheckpoints');
  const store = await storeOf(input.cluster, input.store);
  return withSummary(controllerActivities().quick, `list the checkpoints of ${input.cluster} in ${store}`).listCheckpoints({ store, cluster: input.cluster });
}

export async function showCheckpoint(raw: CheckpointRefInput) {
  const input = validateInput(oneInput, raw, 'showCheckpoint');
  const store = await storeOf(input.cluster, input.store);
  return withSummary(controllerActivities().quick, `read the manifest of ${input.checkpointId}`).showCheckpoint({ store, cluster: input.cluster, checkpointId: input.checkpointId });
}

export async function verifyCheckpoint(raw: CheckpointRefInput) {
  const input = validateInput(oneInput, raw, 'verifyCheckpoint');
  const store = await storeOf(input.cluster, input.store);
  return withSummary(controllerActivities().long, `verify every file of ${input.checkpointId} (sha256)`).verifyCheckpoint({ store, cluster: input.cluster, checkpointId: input.checkpointId });
}

export async function deleteCheckpoint(raw: CheckpointRefInput) {
  const input = validateInput(oneInput, raw, 'deleteCheckpoint');
  const lock = await acquireCluster(input.cluster, 'delete', { checkpointId: input.checkpointId });
  const store = input.store ?? lock.spec.store;
  try {
    const report = await withSummary(controllerActivities().quick, `delete ${input.checkpointId} and the disk layers only it needs`).deleteCheckpoint({ store, cluster: input.cluster, checkpointId: input.checkpointId });
    await releaseCluster(input.cluster, { outcome: 'completed', detail: `deleted ${input.checkpointId}` });
    return report;
  } catch (err) {
    await releaseCluster(input.cluster, { outcome: 'failed', detail: reasonOf(err) });
    throw err;
  }
}
