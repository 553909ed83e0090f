// The live protocol of checkpointCluster (mode 'live'; ARCHITECTURE.md, "Live checkpoints"):
//   prepare (+ clock check, each VM's snapshot writer) → capture (each host runs the timed plan: stop at T, freeze, background
//   snapshot, QEMU resumes the guest) → cut check (from the hosts' STOP/RESUME times) → write (the RAM
//   streams out while the guests run) → commit → finish
// No workflow round trip lies inside a VM's pause. A failure anywhere before the commit cancels the
// background writes (drained to their end, never cut: QEMU 7.2 would freeze the guest) and then runs the
// shared undo path (every VM left paused is resumed, files removed, the failure recorded).
import { ApplicationFailure, CancellationScope, log } from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { LiveCaptured, SavedState, VmTimestamp } from '../activities/host/types';
import { onEveryHost, onEveryHostSettled, pauseLead } from './barriers';
import { commit, prepare, transferRequest, type CheckpointRun, type PauseBound, type Prepared } from './checkpoint-phases';
import type { Resumed } from './checkpoint-record';
import { checkCut, clockRefusals, snapshotGap, type CutSample } from './live-cut';
import { reasonOf } from './validate';
import { stateFiles, vmList, withSummary } from './summary';

export interface LiveCommitted {
  manifestPath: string;
  /** Host → each VM's STOP time (ms) as the shared result reports pauses. */
  paused: Map<string, VmTimestamp[]>;
  saved: Map<string, SavedState[]>;
  resumed: Resumed;
}

/** The live protocol up to its commit; if it throws after `writers.started`, cancelLiveWrites must run before undo. */
export async function liveProtocol(run: CheckpointRun, bound: PauseBound, writers: { started: boolean }): Promise<LiveCommitted> {
  const prepared = await prepare(run);
  refuseOffClocks(run, prepared, Date.now());
  writers.started = true;
  const ready = await prepareWriters(run);
  const captured = await capture(run, ready, bound);
  const verdict = checkCut(cutSamples(captured), run.spec.clockToleranceMs);
  if (!verdict.ok) throw ApplicationFailure.nonRetryable(verdict.reason, 'CutBroken');
  log.info('live cut holds', { checkpointId: run.checkpointId, marginMs: verdict.marginMs, lastStopAt: verdict.lastStopAt, firstResumeAt: verdict.firstResumeAt });
  const saved = await writeOut(run, prepared);
  const paused = pausedOf(captured);
  const frozen = new Map([...captured].map(([host, vms]) => [host, vms.map((v) => v.frozen)]));
  const manifestPath = await commit(run, { prepared: prepared.reports, paused, frozen, saved, live: { captured, cut: verdict } });
  return { manifestPath, paused, saved, resumed: resumedOf(captured) };
}

/** A host whose clock is provably off by more than the tolerance makes a live checkpoint fail before any pause. */
function refuseOffClocks(run: CheckpointRun, prepared: Prepared, repliedAt: number): void {
  const probes = [...prepared.reports].map(([host, r]) => ({ host, receivedAt: r.receivedAt }));
  const refusals = clockRefusals(probes, prepared.sentAt, repliedAt, run.spec.clockToleranceMs);
  if (refusals.length) throw ApplicationFailure.nonRetryable(`live checkpoint refused: ${refusals.join('; ')}`, 'ClockSkew');
}

/** Each host sets up its VMs' snapshots (a detached writer each) while they run; returns when the step went out and arrived. */
async function prepareWriters(run: CheckpointRun): Promise<{ sentAt: number; receivedAt: number[] }> {
  const { cluster, checkpointId, runId, spec } = run;
  const sentAt = Date.now();
  const ready = await onEveryHost(run.byHost, (host, vms) =>
    withSummary(run.hosts(host).quick, `prepare the live snapshots of ${vmList(vms)} on host ${host}`).prepareLive({ cluster, store: spec.store, checkpointId, runId, vms }),
  );
  return { sentAt, receivedAt: [...ready.values()].map((r) => r.receivedAt) };
}

/** Every host executes the timed plan; resolves once every VM is stopped, frozen, snapshotted and running again. */
async function capture(run: CheckpointRun, ready: { sentAt: number; receivedAt: number[] }, bound: PauseBound): Promise<Map<string, LiveCaptured[]>> {
  const { cluster, checkpointId, runId, spec, progress } = run;
  progress.phase('capture');
  bound.arm();
  progress.vms(Object.keys(run.placement), 'pausing');
  const sentAt = Date.now();
  const pauseAt = sentAt + pauseLead(ready.sentAt, ready.receivedAt);
  const captured = await onEveryHost(run.byHost, (host, vms) =>
    withSummary(run.hosts(host).quick, `live capture of ${vmList(vms)} on host ${host}`).captureLive({
      cluster,
      store: spec.store,
      checkpointId,
      runId,
      vms,
      pauseBoundMs: run.boundMs,
      pauseAt,
      snapshotAt: pauseAt + snapshotGap(spec.clockToleranceMs, spec.liveSnapshotGapMs),
      barrierHosts: [...run.byHost.keys()],
    }),
  );
  // Every VM runs again: the pause bound has nothing left to guard.
  bound.disarm();
  progress.vms(Object.keys(run.placement), 'writing');
  return captured;
}

function cutSamples(captured: Map<string, LiveCaptured[]>): CutSample[] {
  return [...captured].flatMap(([host, vms]) => vms.map((v) => ({ vm: v.name, host, stoppedAt: v.stoppedAt, resumedAt: v.resumedAt })));
}

/** The background writes joined: progress arrives as transferProgress signals; no pause bound applies. */
async function writeOut(run: CheckpointRun, prepared: Prepared): Promise<Map<string, SavedState[]>> {
  const { checkpointId, progress } = run;
  progress.phase('write');
  let ramBytes = 0;
  for (const report of prepared.reports.values()) {
    for (const vm of report.vms) {
      progress.setBytes(vm.name, 0, vm.ramBytes);
      ramBytes += vm.ramBytes;
    }
  }
  // Generous: a background write runs at ~100-250 MiB/s here; allow 5 MiB/s and at least 2 minutes.
  const budget: Duration = `${Math.max(120, Math.ceil(ramBytes / (5 * 1024 * 1024)))} seconds`;
  const saved = await onEveryHost(run.byHost, (host, vms) =>
    withSummary(run.hosts(host).transfer(budget), `write ${vmList(vms)} on host ${host} → ${stateFiles(checkpointId, vms)}`).finishLiveWrites(transferRequest(run, vms)),
  );
  for (const states of saved.values()) for (const s of states) progress.setBytes(s.name, s.size, s.size);
  progress.vms(Object.keys(run.placement), 'running');
  return saved;
}

/** The capture's STOP times as the pause records of the shared result (ms, as stop mode reports them). */
function pausedOf(captured: Map<string, LiveCaptured[]>): Map<string, VmTimestamp[]> {
  return new Map(
    [...captured].map(([host, list]) => [
      host,
      list.map((v) => ({ name: v.name, at: Math.floor(v.stoppedAt), receivedAt: v.receivedAt, ...(v.consoleOffset !== undefined ? { consoleOffset: v.consoleOffset } : {}) })),
    ]),
  );
}

/** QEMU resumed every guest itself during the capture: those are the resume times. */
function resumedOf(captured: Map<string, LiveCaptured[]>): Resumed {
  const resumedAt = new Map([...captured.values()].flat().map((v) => [v.name, Math.ceil(v.resumedAt)] as const));
  return { resumedAt, failures: [] };
}

/**
 * Before the shared undo: every host drains and removes its live writes (a VM still paused — the capture
 * failed between its stop and its snapshot — is then resumed by undo). Returns what could not be cleaned.
 */
export async function cancelLiveWrites(run: CheckpointRun, captureStarted: boolean): Promise<string[]> {
  if (!captureStarted) return [];
  const { cluster, checkpointId, runId, spec } = run;
  const outcomes = await CancellationScope.nonCancellable(() =>
    onEveryHostSettled(run.byHost, (host, vms) =>
      withSummary(run.hosts(host).transfer('5 minutes'), `undo: drain the live writes of ${vmList(vms)} on host ${host}`).cancelLiveWrites({ cluster, store: spec.store, checkpointId, runId, vms }),
    ),
  );
  return outcomes.flatMap((r) => (r.ok ? r.value.failed.map((f) => `live write of ${f.name} on ${r.host}: ${f.reason}`) : [`live writes on host ${r.host}: ${reasonOf(r.error)}`]));
}
