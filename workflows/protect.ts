// protectCluster: what every action of a cluster's protection Schedule (vccr-protect-<cluster>) runs.
//   checkpoint (a child checkpointCluster) → verify it (read every state file back) → retention under the
//   cluster lock: delete what the policy no longer keeps, merge disk layers, collect garbage, record it.
// The Schedule's overlap policy (SKIP) means two of these never run at once for a cluster; the cluster
// lock keeps them apart from everything else.
import { ApplicationFailure, ParentClosePolicy, executeChild, log, uuid4, workflowInfo } from '@temporalio/workflow';
import { defaultCheckpointId } from '../common/names';
import { LIVE_CHECKPOINTS_AVAILABLE, protectRunInputSchema, type CheckpointMode } from '../common/protection';
import type { CheckpointResult } from './checkpoint';
import { controllerActivities } from './proxies';
import { ProgressTracker } from './progress';
import { reasonOf, validateInput } from './validate';
import { retainAndCompact, type RetentionOutcome } from './retention';
import { withSummary } from './summary';
import { checkpointWorkflowId } from '../common/ids';

export interface ProtectRunResult {
  cluster: string;
  mode: CheckpointMode;
  /** Set when the mode asked for could not be used. */
  modeNote?: string;
  checkpoint:
    | { checkpointId: string; downtimeMs: number; totalBytes: number; verified: boolean; problems: string[] }
    | { skipped: string }
    | { failed: string; checkpointId: string };
  retention: RetentionOutcome | { skipped: string };
}

export async function protectCluster(raw: unknown): Promise<ProtectRunResult> {
  const input = validateInput(protectRunInputSchema, raw, 'protectCluster');
  const { cluster } = input;
  const progress = new ProgressTracker('protect', cluster);
  let mode: CheckpointMode = input.mode;
  let modeNote: string | undefined;
  if (mode === 'live' && !LIVE_CHECKPOINTS_AVAILABLE) {
    mode = 'stop';
    modeNote = 'live checkpoints are not available in this version: took a stop-and-save checkpoint instead';
    log.warn(modeNote, { cluster });
  }

  progress.phase('check');
  const busy = (await notRunning(cluster)) ?? (await watchIsBusy(cluster));
  if (busy) {
    log.info('scheduled run skipped', { cluster, busy });
    progress.phase('done');
    return { cluster, mode, ...(modeNote ? { modeNote } : {}), checkpoint: { skipped: busy }, retention: { skipped: busy } };
  }
  const checkpoint = await checkpointAndVerify(cluster, mode, progress);
  // Asked again: a failure noticed during the checkpoint (which then failed on it) is the watch's now.
  const busyNow = await watchIsBusy(cluster);
  const retention = busyNow
    ? { skipped: busyNow }
    : await retainAndCompact(cluster, input.retention, progress).catch((err: unknown) => ({ skipped: `failed: ${reasonOf(err)}` }));
  progress.phase('done');
  const result: ProtectRunResult = { cluster, mode, ...(modeNote ? { modeNote } : {}), checkpoint, retention };
  if ('failed' in checkpoint) {
    // The run fails (red in the Schedule's recent actions) — after retention, which ran regardless.
    throw ApplicationFailure.create({ message: `scheduled checkpoint of ${cluster} failed: ${checkpoint.failed}`, type: 'CheckpointFailed', nonRetryable: true, details: [result] });
  }
  return result;
}

/** Why not to run now, if the cluster is not running (a planned `vccr down`: nothing changes until it is back). */
async function notRunning(cluster: string): Promise<string | undefined> {
  const state = await withSummary(controllerActivities().quick, `read the cluster record of ${cluster}`).getClusterState({ cluster });
  if (!state?.spec) return `unknown cluster ${cluster}`;
  return state.status === 'running' || state.status === 'degraded' ? undefined : `the cluster is ${state.status}`;
}

/**
 * Why not to run now, if the watch is dealing with a failure: a checkpoint or retention would only hold
 * the lock the recovery needs, and fail on the broken cluster.
 */
async function watchIsBusy(cluster: string): Promise<string | undefined> {
  const watch = await withSummary(controllerActivities().quick, `ask the watch of ${cluster} how it is`).getWatchState({ cluster });
  return watch && watch.phase !== 'watching' && watch.phase !== 'stopped' ? `the watch is ${watch.phase}: ${watch.reason}` : undefined;
}

async function checkpointAndVerify(cluster: string, mode: CheckpointMode, progress: ProgressTracker): Promise<ProtectRunResult['checkpoint']> {
  const checkpointId = defaultCheckpointId(Date.now(), uuid4());
  progress.setCheckpointId(checkpointId);
  progress.phase('checkpoint');
  let result: CheckpointResult;
  try {
    result = await executeChild<(input: unknown) => Promise<CheckpointResult>>('checkpointCluster', {
      workflowId: checkpointWorkflowId(cluster, checkpointId),
      taskQueue: workflowInfo().taskQueue,
      args: [{ cluster, checkpointId, ...(mode === 'live' ? { mode } : {}) }],
      workflowTaskTimeout: '3 seconds',
      // If this run is cancelled or terminated, the checkpoint is cancelled: it resumes every VM and records why.
      parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
    });
  } catch (err) {
    const reason = reasonOf(err);
    log.warn('scheduled checkpoint failed', { cluster, checkpointId, reason });
    return { failed: reason, checkpointId };
  }
  progress.phase('verify');
  const store = (await withSummary(controllerActivities().quick, `read the cluster record of ${cluster}`).getClusterState({ cluster }))?.spec?.store;
  const report = store
    ? await withSummary(controllerActivities().long, `verify ${checkpointId}: read every state file back`).verifyAndMark({ store, cluster, checkpointId })
    : { ok: false, problems: ['no cluster record: cannot find the store'] };
  if (!report.ok) log.error('a new checkpoint does not verify', { cluster, checkpointId, problems: report.problems });
  return { checkpointId, downtimeMs: result.downtimeMs, totalBytes: result.totalBytes, verified: report.ok, problems: report.problems };
}
