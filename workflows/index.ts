// Every workflow the controller worker runs (this file is the bundle's entry point).
export { clusterRecord } from './cluster';
export { launchCluster } from './launch';
export { checkpointCluster } from './checkpoint';
export { restartCluster } from './restart';
export { shutdownCluster } from './shutdown';
export { inspectCluster } from './inspect';
export { listCheckpoints, showCheckpoint, verifyCheckpoint, deleteCheckpoint } from './checkpoints';
export { doctorCluster } from './doctor';
export { protectCluster } from './protect';
export { watchCluster } from './watch';
export { recoverCluster } from './recover';
