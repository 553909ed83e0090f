// checkpointCluster: the stop-and-save protocol (ARCHITECTURE.md, "Checkpoint"), read as its phases
// (checkpoint-phases.ts):
//   prepare → pause barrier → freeze disks → save barrier → commit (manifest) → resume barrier → finish
// Mode 'live' runs checkpoint-live.ts instead: prepare → capture → cut check → write → commit → finish.
// Until the commit, any failure — an activity error, a dead host, the pause bound running out, a cancel —
// runs undo: resume every VM that may have been paused, remove the partial files, record why it failed.
import { log } from '@temporalio/workflow';
import { checkpointInputSchema, type CheckpointInput } from '../common/workflow-inputs';
import { validateInput } from './validate';
import { begin, commit, finish, freeze, pause, PauseBound, prepare, resume, save, undo } from './checkpoint-phases';
import { checkpointResult, type CheckpointResult } from './checkpoint-record';
import { cancelLiveWrites, liveProtocol } from './checkpoint-live';
import type { CheckpointRun } from './checkpoint-phases';

export type { CheckpointResult };

export async function checkpointCluster(rawInput: CheckpointInput): Promise<CheckpointResult> {
  const input = validateInput(checkpointInputSchema, rawInput, 'checkpointCluster');
  const run = await begin(input);
  const bound = new PauseBound(run);
  if (input.mode === 'live') return liveCheckpoint(run, bound);
  let committed;
  try {
    committed = await bound.enforce(async () => {
      const prepared = await prepare(run);
      const paused = await pause(run, prepared, bound);
      const frozen = await freeze(run, prepared);
      const saved = await save(run, prepared);
      const manifestPath = await commit(run, { prepared: prepared.reports, paused: paused.vms, frozen, saved }, bound.windowEnd(paused.sentAt));
      return { manifestPath, paused, saved };
    });
  } catch (err) {
    throw await undo(run, bound, err);
  }
  // Committed: from here on the checkpoint exists whatever happens to the resume.
  bound.disarm();
  const resumed = await resume(run, committed.paused);
  await finish(run, resumed);
  const { manifestPath, paused, saved } = committed;
  return checkpointResult(run, { manifestPath, placement: run.placement, paused: paused.vms, saved }, resumed, run.progress.state);
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
  return checkpointResult(run, { manifestPath, placement: run.placement, paused: paused.vms, saved }, resumed, run.progress.state);
}
