// Taking and giving back the cluster lock (see cluster.ts) from an operation workflow.
import { ActivityFailure, ApplicationFailure, getExternalWorkflowHandle, workflowInfo } from '@temporalio/workflow';
import type { ClusterSpec } from '../common/spec';
import { controllerActivities } from './proxies';
import { clusterWorkflowId } from '../common/ids';
import { releaseSignal, type AcquireReply, type OperationKind, type ReleaseRequest } from '../common/messages';
import { withSummary } from './summary';

export async function acquireCluster(
  cluster: string,
  operation: OperationKind,
  options: { checkpointId?: string; spec?: ClusterSpec; create?: boolean } = {},
): Promise<AcquireReply> {
  const info = workflowInfo();
  try {
    return await withSummary(controllerActivities().quick, `lock cluster ${cluster} for ${operation}${options.checkpointId ? ` ${options.checkpointId}` : ''}`).acquireCluster({
      cluster,
      operation,
      workflowId: info.workflowId,
      runId: info.runId,
      create: options.create ?? false,
      ...(options.checkpointId ? { checkpointId: options.checkpointId } : {}),
      ...(options.spec ? { spec: options.spec } : {}),
    });
  } catch (err) {
    // Report a refusal (busy, unknown cluster, ...) as this workflow's own failure, with its type.
    if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) {
      throw ApplicationFailure.nonRetryable(err.cause.message, err.cause.type ?? 'AcquireFailed');
    }
    throw err;
  }
}

/** Hands the lock back with the operation's outcome; never throws (the record may be gone). */
export async function releaseCluster(cluster: string, release: Omit<ReleaseRequest, 'workflowId'>): Promise<void> {
  try {
    await getExternalWorkflowHandle(clusterWorkflowId(cluster)).signal(releaseSignal, {
      workflowId: workflowInfo().workflowId,
      ...release,
    });
  } catch {
    // The cluster record was terminated by hand; there is no lock left to release.
  }
}
