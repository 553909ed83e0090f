// restartCluster: the restart protocol (ARCHITECTURE.md, "Restart"), read as its phases (restart-phases.ts):
//   validate manifest and every checksum (before touching anything) → the old VM processes are gone
//   → launch each VM from its recorded configuration, paused, waiting for its state, on a fresh overlay
//   over its frozen disks → load every state (load barrier) → cont all together → finish
// A failure after the launch began kills what this restart started and marks the cluster down.
import { restartInputSchema, type RestartInput } from '../common/workflow-inputs';
import { validateInput } from './validate';
import { begin, finish, launch, load, resume, stopOld, undo, validate, type RestartPlan } from './restart-phases';
import { restartResult, type RestartResult } from './restart-plan';

export type { RestartResult };

export async function restartCluster(rawInput: RestartInput): Promise<RestartResult> {
  const input = validateInput(restartInputSchema, rawInput, 'restartCluster');
  const run = await begin(input);
  let plan: RestartPlan | undefined;
  try {
    plan = await validate(run);
    const unreachableHosts = await stopOld(run, plan);
    await launch(run, plan);
    const loaded = await load(run, plan);
    const resumed = await resume(run, plan, loaded);
    await finish(run, plan);
    const { checkpointId, placement } = plan;
    return restartResult({ cluster: run.cluster, checkpointId, placement, unreachableHosts }, loaded.vms, resumed, run.progress.state);
  } catch (err) {
    throw await undo(run, plan, err);
  }
}
