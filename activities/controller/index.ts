// Activities the controller worker runs: the cluster lock (through the Temporal client) and the store.
import type { Client } from '@temporalio/client';
import { lockActivities } from './lock';
import * as store from './store';
import * as retention from './retention';
import { protectionActivities, recordRecovery, listRecoveries } from './protection';
import { collectGarbage } from './garbage';
import { allHeartbeating } from '../heartbeat';

export function createControllerActivities(client: Client, controllerTaskQueue: string) {
  return allHeartbeating({
    ...lockActivities(client, controllerTaskQueue),
    ...protectionActivities(client),
    recordRecovery,
    listRecoveries,
    beginCheckpoint: store.beginCheckpoint,
    commitCheckpoint: store.commitCheckpoint,
    recordResume: store.recordResume,
    abortCheckpoint: store.abortCheckpoint,
    findCheckpoint: store.findCheckpoint,
    listCheckpoints: store.listCheckpoints,
    showCheckpoint: store.showCheckpoint,
    verifyCheckpoint: store.verifyCheckpoint,
    deleteCheckpoint: store.deleteCheckpoint,
    collectGarbage,
    verifyAndMark: retention.verifyAndMark,
    applyRetention: retention.applyRetention,
    compactStore: retention.compactStore,
    recordRetention: retention.recordRetention,
  });
}

export type ControllerActivities = ReturnType<typeof createControllerActivities>;
