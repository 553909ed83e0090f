// Acquiring the cluster lock for an operation workflow: an update on the cluster record (which creates
// the record first for a launch or a restart from a manifest). A lock still held by a workflow that has
// since closed — terminated by hand, say — is taken over, so a cluster can never stay locked forever.
import { ApplicationFailure } from '@temporalio/activity';
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { childLogger } from '../../node/logger';
import { clusterWorkflowId } from '../../common/ids';
import { acquireUpdate, clusterStateQuery, type AcquireReply, type ClusterState } from '../../common/messages';
import type { AcquireClusterRequest } from './types';
import type { clusterRecord } from '../../workflows/cluster';

const log = childLogger('cluster-lock');

export function lockActivities(client: Client, controllerTaskQueue: string) {
  async function ensureRecord(cluster: string): Promise<void> {
    await client.workflow.start<typeof clusterRecord>('clusterRecord', {
      workflowId: clusterWorkflowId(cluster),
      taskQueue: controllerTaskQueue,
      args: [{ cluster }],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowTaskTimeout: '3 seconds',
    });
  }

  async function acquireCluster(req: AcquireClusterRequest): Promise<AcquireReply> {
    const { cluster, create, ...acquire } = req;
    if (create) await ensureRecord(cluster);
    const handle = client.workflow.getHandle(clusterWorkflowId(cluster));
    for (let attempt = 0; ; attempt++) {
      try {
        return await handle.executeUpdate(acquireUpdate, { args: [acquire] });
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) {
          throw ApplicationFailure.nonRetryable(`unknown cluster ${cluster}: no cluster record (launch it with \`vccr up\`)`, 'UnknownCluster');
        }
        if (!(err instanceof WorkflowUpdateFailedError)) throw err;
        const cause = err.cause;
        const type = cause instanceof ApplicationFailure ? cause.type : undefined;
        if (type === 'ClusterBusy' && attempt === 0) {
          const holder = (await handle.query(clusterStateQuery)).lock;
          if (holder && (await isClosed(holder.workflowId, holder.runId))) {
            log.warn({ cluster, holder }, 'taking over the lock of a closed workflow');
            acquire.stealFrom = { workflowId: holder.workflowId, runId: holder.runId };
            continue;
          }
        }
        throw ApplicationFailure.nonRetryable(cause?.message ?? err.message, type ?? 'AcquireFailed');
      }
    }
  }

  async function isClosed(workflowId: string, runId: string): Promise<boolean> {
    try {
      const d = await client.workflow.getHandle(workflowId, runId).describe();
      return d.status.name !== 'RUNNING';
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return true;
      throw err;
    }
  }

  async function getClusterState(req: { cluster: string }): Promise<ClusterState | undefined> {
    try {
      return await client.workflow.getHandle(clusterWorkflowId(req.cluster)).query(clusterStateQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
  }

  return { acquireCluster, getClusterState };
}
