// checkpointCluster: the stop-mode protocol (ARCHITECTURE.md, "Checkpoint"), read as its phases
// (checkpoint-phases.ts):
//   prepare → capture (pause barrier; hosts freeze disks and start saves on their own, and resume each VM
//   once its state is durable and every host's mark is on the store) → finishSaves (joins the saves; resumes
//   what the store barrier did not) → commit (manifest) → finish
// Mode 'live' runs checkpoint-live.ts instead: prepare → capture → cut check → write → commit → finish.
// Until the commit, any failure — an activity error, a dead host, the pause bound running out, a cancel —
// runs undo: resume every VM that may still be paused, remove the partial files, record why it failed.
import { log, patched } from '@temporalio/workflow';
import { checkpointInputSchema, type CheckpointInput } from '../common/workflow-inputs';
import { validateInput } from './validate';
import { begin, capture, commit, finish, finishSaves, PauseBound, prepare, undo } from './checkpoint-phases';
import { checkpointResult, type CheckpointResult } from './checkpoint-record';
import { cancelLiveWrites, liveProtocol } from './checkpoint-live';
import type { CheckpointRun } from './checkpoint-phases';
import { checkpointV1 } from './checkpoint-v1';

/** Marks executions that run protocol v2; those started before it replay the v1 phases (checkpoint-v1.ts). */
const STOP_CAPTURE_V2 = 'stop-capture-v2';

export type { CheckpointResult };

export async function checkpointCluster(rawInput: CheckpointInput): Promise<CheckpointResult> {
  const input = validateInput(checkpointInputSchema, rawInput, 'checkpointCluster');
  const run = await begin(input);
  const bound = new PauseBound(run);
  // Live mode did not exist before the patch: its executions never take the v1 phases.
  if (input.mode === 'live') return liveCheckpoint(run, bound);
  if (!patched(STOP_CAPTURE_V2)) return checkpointV1(run, bound);
  let committed;
  try {
    committed = await bound.enforce(async () => {
      const prepared = await prepare(run);
      const captured = await capture(run, prepared, bound);
      // Every VM of the cut is paused (every host answered): from here on a VM may resume.
      const saved = await finishSaves(run);
      const reports = { prepared: prepared.reports, paused: captured.paused, frozen: captured.frozen, saved: saved.states };
      const manifestPath = await commit(run, reports, bound.windowEnd(captured.sentAt));
      return { manifestPath, captured, saved };
    });
  } catch (err) {
    throw await undo(run, bound, err);
  }
  // Committed: from here on the checkpoint exists whatever happens next.
  bound.disarm();
  const { manifestPath, captured, saved } = committed;
  await finish(run, saved.resumed);
  return checkpointResult(run, { manifestPath, placement: run.placement, paused: captured.paused, saved: saved.states }, saved.resumed, run.progress.state);
}

/** Mode live (checkpoint-live.ts): the guests pause only to fix the cut; their RAM is written while they run. */
async function liveCheckpoint(run: CheckpointRun, bound: PauseBound): Promise<CheckpointResult> {
  let committed;
  const writers = { started: false };
  try {
    committed = await bound.enforce(() => liveProtocol(run, bound, writers));
  } catch (err) {
    const leftovers = await cancelLiveWrites(run, writers.started);
    if (leftovers.length) log.error('live writes could not be cleaned up', { leftovers });
    throw await undo(run, bound, err);
  }
  await finish(run, committed.resumed);
  const { manifestPath, paused, saved, resumed } = committed;
  return checkpointResult(run, { manifestPath, placement: run.placement, paused, saved }, resumed, run.progress.state);
}
