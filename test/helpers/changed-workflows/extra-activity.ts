// A deliberately breaking change, for test/replay-changed.test.ts: checkpointCluster reads the cluster
// state before doing anything else. A checkpoint already running when this is deployed would replay an
// activity its history does not have: the replay test must catch it.
import { checkpointCluster as today } from '../../../workflows/checkpoint';
import { controllerActivities } from '../../../workflows/proxies';

export async function checkpointCluster(rawInput: Parameters<typeof today>[0]): ReturnType<typeof today> {
  await controllerActivities().quick.getClusterState({ cluster: String((rawInput as { cluster?: unknown }).cluster) });
  return today(rawInput);
}
