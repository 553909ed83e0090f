// recoverCluster: brings a protected cluster back after a failure, started by its watch (or by hand).
// Tries the committed checkpoints newest first; each attempt is a restartCluster child with `force`
// (fencing: every VM of the cluster still running on a reachable host is killed before anything is
// launched) and the dead hosts' VMs remapped. A checkpoint that does not verify (restart fails in its
// validate phase, before touching anything) makes it fall back to the one before. Every recovery is
// recorded in <store>/<cluster>/_recoveries/ and in the cluster record's recent list.
import { ApplicationFailure, getExternalWorkflowHandle, executeChild, log, sleep, uuid4, workflowInfo } from '@temporalio/workflow';
import { recoverInputSchema, type Failure } from '../common/protection';
import type { CheckpointSummary } from '../activities/controller/types';
import type { RestartResult } from './restart';
import { noteSignal } from '../common/messages';
import { controllerActivities } from './proxies';
import { ProgressTracker } from './progress';
import { reasonOf, validateInput } from './validate';
import { withSummary } from './summary';
import { clusterWorkflowId, recoveryRestartWorkflowId } from '../common/ids';

export interface RecoveryResult {
  cluster: string;
  checkpointId: string;
  placement: Record<string, string>;
  /** Newer checkpoints that did not verify, and why. */
  skipped: Array<{ checkpointId: string; reason: string }>;
  /** First noticed → every VM running again (ms), when the watch said when it noticed. */
  recoveryMs?: number;
  restartMs: number;
  record: string;
}

/** How long a recovery waits for an operation that holds the cluster (a checkpoint failing on the dead host). */
const BUSY_PATIENCE_MS = 5 * 60_000;

/** Failure types of a restart that stopped in validate, before touching anything, because the checkpoint is damaged. */
const DAMAGED = new Set(['CorruptCheckpoint', 'CorruptManifest', 'ChecksumMismatch', 'UnknownCheckpoint']);

/** Every ApplicationFailure type along an error's cause chain (a child's failure wraps its activity's). */
function failureTypes(err: unknown): string[] {
  const types: string[] = [];
  for (let e: unknown = err, i = 0; e instanceof Error && i < 10; e = (e as Error & { cause?: unknown }).cause, i++) {
    if (e instanceof ApplicationFailure && e.type) types.push(e.type);
  }
  return types;
}

export async function recoverCluster(raw: unknown): Promise<RecoveryResult> {
  const input = validateInput(recoverInputSchema, raw, 'recoverCluster');
  const { cluster } = input;
  const info = workflowInfo();
  const startedAt = Date.now();
  const controller = controllerActivities();
  const progress = new ProgressTracker('recover', cluster);
  progress.phase('select');
  const state = await withSummary(controller.quick, `read the cluster record of ${cluster}`).getClusterState({ cluster });
  if (!state?.spec) throw ApplicationFailure.nonRetryable(`unknown cluster ${cluster}`, 'UnknownCluster');
  const store = state.spec.store;
  const list = await withSummary(controller.quick, 'list the committed checkpoints').listCheckpoints({ store, cluster });
  const skipped: RecoveryResult['skipped'] = [];
  const base = { cluster, workflowId: info.workflowId, failures: input.failures, noticedAt: input.noticedAt, startedAt, hostMap: input.hostMap, placementBefore: state.placement };

  const candidates = [...list.committed].reverse();
  for (let i = 0; i < candidates.length; i++) {
    const ck = candidates[i] as CheckpointSummary;
    progress.setCheckpointId(ck.checkpointId);
    progress.phase('restart');
    await untilFree(cluster, startedAt);
    try {
      const restart = await executeChild<(input: unknown) => Promise<RestartResult>>('restartCluster', {
        workflowId: recoveryRestartWorkflowId(cluster, ck.checkpointId, uuid4().slice(0, 8)),
        taskQueue: info.taskQueue,
        args: [restartInputFor(cluster, ck, state.placement, input.hostMap, input.deadHosts)],
        workflowTaskTimeout: '3 seconds',
      });
      const endedAt = Date.now();
      const placement = Object.fromEntries(restart.vms.map((v) => [v.name, v.host]));
      progress.phase('record');
      const record = await withSummary(controller.quick, 'record the recovery').recordRecovery({
        store,
        cluster,
        workflowId: info.workflowId,
        record: { ...base, outcome: 'completed', checkpointId: ck.checkpointId, skipped, placement, endedAt, restartMs: restart.restoreMs, recoveryMs: input.noticedAt ? endedAt - input.noticedAt : undefined },
      });
      await note(cluster, 'completed', `recovered from ${ck.checkpointId} after ${describeFailures(input.failures)}; VMs on ${describePlacement(placement)}`, ck.checkpointId);
      progress.phase('done');
      return { cluster, checkpointId: ck.checkpointId, placement, skipped, restartMs: restart.restoreMs, ...(input.noticedAt ? { recoveryMs: endedAt - input.noticedAt } : {}), record };
    } catch (err) {
      const reason = reasonOf(err);
      if (failureTypes(err).includes('ClusterBusy') && Date.now() - startedAt < BUSY_PATIENCE_MS) {
        // Typically a checkpoint that was running when the failure struck, now failing on the dead host: wait for it.
        log.info('cluster busy; waiting to recover', { cluster, reason });
        await sleep(1000);
        i--;
        continue;
      }
      if (failureTypes(err).some((t) => DAMAGED.has(t))) {
        log.warn('checkpoint does not verify; falling back to the one before', { cluster, checkpointId: ck.checkpointId, reason });
        skipped.push({ checkpointId: ck.checkpointId, reason });
        continue;
      }
      await fail(`restart from ${ck.checkpointId} failed: ${reason}`);
    }
  }
  return fail(list.committed.length ? 'no committed checkpoint verifies' : 'the cluster has no committed checkpoint');

  async function fail(reason: string): Promise<never> {
    progress.fail(reason);
    await withSummary(controller.quick, 'record the failed recovery')
      .recordRecovery({ store, cluster, workflowId: info.workflowId, record: { ...base, outcome: 'failed', reason, skipped, endedAt: Date.now() } })
      .catch(() => undefined);
    await note(cluster, 'failed', reason);
    throw ApplicationFailure.nonRetryable(`recovery of ${cluster} failed: ${reason}`, 'RecoveryFailed');
  }
}

/** Waits (within the patience) while another operation holds the cluster, instead of failing on it. */
async function untilFree(cluster: string, since: number): Promise<void> {
  while (Date.now() - since < BUSY_PATIENCE_MS) {
    const lock = (await withSummary(controllerActivities().quick, 'is the cluster free?').getClusterState({ cluster }))?.lock;
    if (!lock) return;
    await sleep(1000);
  }
}

/**
 * Where a checkpoint's VMs come back: where the cluster ran until now (a checkpoint taken before an earlier
 * move would otherwise move VMs back), except that a dead host's VMs go to its replacement. restartCluster
 * maps whole hosts, so a checkpoint host whose VMs have since been split up keeps its own name.
 */
export function restartInputFor(cluster: string, ck: CheckpointSummary, current: Record<string, string>, hostMap: Record<string, string>, deadHosts: string[]) {
  const map: Record<string, string> = {};
  for (const host of ck.hosts) {
    const nowOn = new Set(Object.entries(ck.placement).filter(([, h]) => h === host).map(([vm]) => current[vm] ?? host));
    const moved = nowOn.size === 1 ? ([...nowOn][0] as string) : host;
    const target = hostMap[moved] ?? moved;
    if (target !== host) map[host] = target;
  }
  return { cluster, checkpointId: ck.checkpointId, force: true, hostMap: map, unreachable: deadHosts };
}

async function note(cluster: string, outcome: 'completed' | 'failed', detail: string, checkpointId?: string): Promise<void> {
  try {
    await getExternalWorkflowHandle(clusterWorkflowId(cluster)).signal(noteSignal, {
      operation: 'recover',
      workflowId: workflowInfo().workflowId,
      outcome,
      detail,
      ...(checkpointId ? { checkpointId } : {}),
    });
  } catch {
    // No cluster record to note it in; the store's record still has it.
  }
}

export function describeFailures(failures: Failure[]): string {
  if (!failures.length) return 'an operator request';
  return failures.map((f) => (f.vm ? `${f.vm} on ${f.host}: ${f.kind}` : `host ${f.host}: ${f.kind}`)).join(', ');
}

function describePlacement(placement: Record<string, string>): string {
  return Object.entries(placement)
    .map(([vm, host]) => `${vm}@${host}`)
    .join(' ');
}
