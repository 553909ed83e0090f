// The same change as extra-activity.ts, made safely: behind patched(), as ARCHITECTURE.md says. A run
// that started before the change replays without the extra call; new runs make it.
import { patched } from '@temporalio/workflow';
import { checkpointCluster as today } from '../../../workflows/checkpoint';
import { controllerActivities } from '../../../workflows/proxies';

export async function checkpointCluster(rawInput: Parameters<typeof today>[0]): ReturnType<typeof today> {
  if (patched('read-cluster-state-first')) {
    await controllerActivities().quick.getClusterState({ cluster: String((rawInput as { cluster?: unknown }).cluster) });
  }
  return today(rawInput);
}
