// The stop-mode phases before protocol v2 (pause → freeze → save → commit → resume, each a round trip
// through the workflow inside the pause window), kept for checkpoint executions that started before the
// deploy of v2: checkpoint.ts takes this path when patched('stop-capture-v2') says the execution began
// without it (ARCHITECTURE.md, "Changing a workflow safely"). Delete with the patch once no such execution
// can be running; test/histories/before-stop-capture-v2/ holds the histories that keep it honest until then.
import type { Duration } from '@temporalio/common';
import type { VmTimestamp } from '../activities/host/types';
import { barrierLead, onEveryHost, onEveryHostSettled, pauseLead } from './barriers';
import { stateFiles, vmList, withSummary } from './summary';
import { checkpointResult, resumedFrom, type CheckpointResult, type PhaseReports, type Resumed } from './checkpoint-record';
import { commit, finish, prepare, transferRequest, undo, type CheckpointRun, type PauseBound, type Prepared } from './checkpoint-phases';

/** The v1 protocol from the prepare on (the lock is held and the bound exists). */
export async function checkpointV1(run: CheckpointRun, bound: PauseBound): Promise<CheckpointResult> {
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
  bound.disarm();
  const resumed = await resume(run, committed.paused);
  await finish(run, resumed);
  const { manifestPath, paused, saved } = committed;
  return checkpointResult(run, { manifestPath, placement: run.placement, paused: paused.vms, saved }, resumed, run.progress.state);
}

interface Paused {
  /** Host → each VM's pause time (and when its host received the step). */
  vms: Map<string, VmTimestamp[]>;
  /** When the pause went to the hosts: the pause window is measured from here. */
  sentAt: number;
}

/** The pause barrier: every host stops its VMs at one instant; nothing goes on until all are paused. */
async function pause(run: CheckpointRun, prepared: Prepared, bound: PauseBound): Promise<Paused> {
  const { cluster, checkpointId, runId, progress } = run;
  progress.phase('pause');
  bound.arm();
  progress.vms(Object.keys(run.placement), 'pausing');
  const sentAt = Date.now();
  const pauseAt = sentAt + pauseLead(prepared.sentAt, [...prepared.reports.values()].map((r) => r.receivedAt));
  const vms = await onEveryHost(run.byHost, (host, hostVms) =>
    withSummary(run.hosts(host).quick, `pause ${vmList(hostVms)} on host ${host}`).pauseVms({
      cluster,
      checkpointId,
      runId,
      vms: hostVms,
      pauseBoundMs: run.boundMs,
      notBefore: pauseAt,
    }),
  );
  progress.vms(Object.keys(run.placement), 'paused');
  return { vms, sentAt };
}

/** While paused: each disk's top layer becomes the checkpoint's frozen layer (hosts without disks skip it). */
async function freeze(run: CheckpointRun, prepared: Prepared): Promise<PhaseReports['frozen']> {
  const { cluster, checkpointId, runId, spec, progress } = run;
  progress.phase('freeze');
  const withDisks = new Map([...run.byHost].filter(([host]) => prepared.reports.get(host)?.vms.some((vm) => vm.diskIds.length > 0)));
  const frozen = await onEveryHost(withDisks, (host, vms) =>
    withSummary(run.hosts(host).quick, `freeze the disks of ${vmList(vms)} on host ${host}`).freezeDisks({ cluster, store: spec.store, checkpointId, runId, vms }),
  );
  progress.vms(Object.keys(run.placement), 'frozen');
  return frozen;
}

/** The save barrier: every VM's state into its file; progress arrives as transferProgress signals. */
async function save(run: CheckpointRun, prepared: Prepared): Promise<PhaseReports['saved']> {
  const { checkpointId, spec, progress } = run;
  progress.phase('save');
  for (const report of prepared.reports.values()) for (const vm of report.vms) progress.setBytes(vm.name, 0, vm.ramBytes);
  progress.vms(Object.keys(run.placement), 'saving');
  const transferBudget: Duration = `${Math.max(5, Math.ceil(run.boundMs / 1000))} seconds`;
  const saved = await onEveryHost(run.byHost, (host, vms) =>
    withSummary(run.hosts(host).transfer(transferBudget), `save ${vmList(vms)} on host ${host} → ${stateFiles(checkpointId, vms)}`).saveVmStates({
      ...transferRequest(run, vms),
      ...(spec.stateCompression ? { compression: spec.stateCompression } : {}),
    }),
  );
  for (const states of saved.values()) for (const s of states) progress.setBytes(s.name, s.size, s.size);
  progress.vms(Object.keys(run.placement), 'saved');
  return saved;
}

/** The resume barrier, timed: every host issues its conts at one instant, as late as the slowest host needs. */
async function resume(run: CheckpointRun, paused: Paused): Promise<Resumed> {
  const { progress } = run;
  progress.phase('resume');
  progress.vms(Object.keys(run.placement), 'resuming');
  const resumeSentAt = Date.now();
  const lead = barrierLead(paused.sentAt, [...paused.vms.values()].flat().map((p) => p.receivedAt ?? paused.sentAt));
  const outcomes = await onEveryHostSettled(run.byHost, (host, vms) =>
    withSummary(run.hosts(host).quick, `resume ${vmList(vms)} on host ${host}`).resumeVms({ cluster: run.cluster, vms, checkpointId: run.checkpointId, notBefore: resumeSentAt + lead }),
  );
  progress.endPhase();
  const resumed = resumedFrom(outcomes);
  progress.vms(resumed.resumedAt.keys(), 'running');
  return resumed;
}
