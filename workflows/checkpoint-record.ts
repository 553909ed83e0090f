// What a checkpoint records and returns, built by pure functions from the phases' outputs: the manifest
// (the commit record), the resume record, and the workflow's result. No I/O and no workflow state here.
import { ApplicationFailure } from '@temporalio/workflow';
import type { Manifest, ManifestVm, ResumeRecord } from '../common/manifest';
import type { PhaseTiming } from '../common/messages';
import type { ClusterSpec } from '../common/spec';
import { spread } from '../common/stats';
import { storeLayout } from '../common/store-layout';
import type { FrozenVm, LiveCaptured, PrepareReport, ResumeReport, SavedState, VmTimestamp } from '../activities/host/types';
import type { CutVerdict } from './live-cut';
import type { HostOutcome } from './barriers';
import { reasonOf } from './validate';

export interface CheckpointResult {
  cluster: string;
  checkpointId: string;
  manifest: string;
  /** First pause to last resume, as the hosts measured it. */
  downtimeMs: number;
  pauseSkewMs: number;
  resumeSkewMs: number;
  totalBytes: number;
  phases: Record<string, { start: number; end?: number }>;
  vms: Array<{ name: string; host: string; pausedAt: number; savedAt: number; resumedAt?: number; bytes: number }>;
  /** VMs that could not be resumed after the commit (the checkpoint itself is valid). */
  resumeFailures: string[];
}

/** Who the checkpoint is: the same for every record it writes. */
export interface CheckpointIdentity {
  cluster: string;
  checkpointId: string;
  workflowId: string;
  runId: string;
  spec: ClusterSpec;
}

/** Per host, what each phase reported (the phases' outputs). */
export interface PhaseReports {
  prepared: Map<string, PrepareReport>;
  paused: Map<string, VmTimestamp[]>;
  frozen: Map<string, FrozenVm[]>;
  saved: Map<string, SavedState[]>;
  /** Live mode: each host's STOP/RESUME times and the cut check that accepted them. */
  live?: { captured: Map<string, LiveCaptured[]>; cut: Extract<CutVerdict, { ok: true }> };
}

/** The operation's clock: when it started, and each phase's start and end so far. */
export interface PhaseClock {
  startedAt: number;
  phases: Record<string, PhaseTiming>;
}

/** RAM the VMs will write, and the free space of the fullest host's view of the store. */
export function roomNeeded(prepared: Map<string, PrepareReport>): { needed: number; free: number } {
  const reports = [...prepared.values()];
  return {
    needed: reports.flatMap((r) => r.vms).reduce((sum, vm) => sum + vm.ramBytes, 0),
    free: Math.min(...reports.map((r) => r.storeFreeBytes)),
  };
}

/** The commit record: every VM's launch configuration, state file, frozen disks and timings. */
export function buildManifest(id: CheckpointIdentity, reports: PhaseReports, clock: PhaseClock, now: number): Manifest {
  const vms = [...reports.prepared].flatMap(([host, report]) => report.vms.map((vm) => manifestVm(host, report, vm, reports)));
  vms.sort((a, b) => a.name.localeCompare(b.name));
  const ph = clock.phases;
  const timing = (name: string) => ({ start: ph[name]?.start ?? 0, end: ph[name]?.end ?? ph[name]?.start ?? 0 });
  // Live mode has one capture phase (pause and freeze inside it) and a write phase instead of the save.
  const live = reports.live;
  const { lastStopAt, firstResumeAt, toleranceMs, marginMs } = live?.cut ?? { lastStopAt: 0, firstResumeAt: 0, toleranceMs: 0, marginMs: 0 };
  return {
    format: 'vccr-checkpoint',
    version: 1,
    cluster: id.cluster,
    checkpointId: id.checkpointId,
    workflowId: id.workflowId,
    runId: id.runId,
    createdAt: new Date(clock.startedAt).toISOString(),
    committedAt: new Date(now).toISOString(),
    spec: id.spec,
    mode: live ? 'live' : 'stop',
    ...(live ? { cut: { lastStopAt, firstResumeAt, toleranceMs, marginMs } } : {}),
    vms,
    phases: {
      prepare: timing('prepare'),
      // The disks are frozen inside the capture step, on each host right after its VMs' stops (executions
      // started before protocol v2 had pause and freeze phases of their own); live mode writes in 'write'.
      pause: timing(ph['capture'] ? 'capture' : 'pause'),
      freeze: timing(ph['capture'] ? 'capture' : 'freeze'),
      save: timing(live ? 'write' : 'save'),
      commit: { start: ph['commit']?.start ?? now },
    },
    totalBytes: vms.reduce((sum, vm) => sum + vm.state.size, 0),
  };
}

function manifestVm(host: string, report: PrepareReport, vm: PrepareReport['vms'][number], reports: PhaseReports): ManifestVm {
  const byName = <T extends { name: string }>(list: T[] | undefined) => list?.find((x) => x.name === vm.name);
  const pause = byName(reports.paused.get(host));
  const save = byName(reports.saved.get(host));
  if (!pause || !save) throw ApplicationFailure.nonRetryable(`no pause or save result for VM ${vm.name}`, 'InternalError');
  const freeze = byName(reports.frozen.get(host));
  const live = byName(reports.live?.captured.get(host));
  return {
    name: vm.name,
    host,
    config: vm.config,
    machineType: vm.machineType,
    qemuVersion: report.qemuVersion,
    argv: vm.argv,
    state: {
      file: storeLayout.stateFileName(vm.name),
      size: save.size,
      sha256: save.sha256,
      ...(save.codec ? { codec: save.codec, rawSize: save.rawSize ?? 0 } : {}),
    },
    disks: (freeze?.disks ?? []).map((d) => ({ id: d.id, frozen: d.frozen, backing: d.backing })),
    ...(pause.consoleOffset !== undefined ? { console: { path: vm.consoleLog, offsetAtPause: pause.consoleOffset } } : {}),
    timings: {
      pausedAt: pause.at,
      ...(freeze ? { frozenAt: freeze.at } : {}),
      saveStartedAt: save.startedAt,
      savedAt: save.finishedAt,
      ...(live ? { stoppedAt: live.stoppedAt, resumedAt: live.resumedAt } : {}),
    },
  };
}

/** What the resumes achieved: each resumed VM's time, and one line per VM that did not resume. */
export interface Resumed {
  resumedAt: Map<string, number>;
  failures: string[];
}

export function resumedFrom(outcomes: Array<HostOutcome<ResumeReport>>): Resumed {
  const resumedAt = new Map<string, number>();
  const failures: string[] = [];
  for (const r of outcomes) {
    if (r.ok) {
      for (const t of r.value.resumed) resumedAt.set(t.name, t.at);
      failures.push(...r.value.failed.map((f) => `${f.name} on ${r.host}: ${f.reason}`));
    } else failures.push(...r.vms.map((vm) => `${vm} on ${r.host}: ${reasonOf(r.error)}`));
  }
  return { resumedAt, failures };
}

/** resume.json: when each VM ran again, written beside the (immutable) manifest. */
export function resumeRecord(checkpointId: string, resumed: Resumed, clock: PhaseClock): ResumeRecord {
  // Each VM resumes as soon as its own save is done: the resumes happen within the save phase (in a
  // resume phase of their own for executions started before protocol v2).
  const phase = clock.phases['resume'] ?? clock.phases['save'];
  return {
    checkpointId,
    vms: [...resumed.resumedAt].map(([name, resumedAt]) => ({ name, resumedAt })).sort((a, b) => a.name.localeCompare(b.name)),
    phases: { resume: { start: phase?.start ?? 0, end: phase?.end ?? 0 } },
  };
}

/** The workflow's result: downtime and skews from the hosts' pause and resume times, per-VM times. */
export function checkpointResult(
  id: Pick<CheckpointIdentity, 'cluster' | 'checkpointId'>,
  committed: { manifestPath: string; placement: Record<string, string>; paused: Map<string, VmTimestamp[]>; saved: Map<string, SavedState[]> },
  resumed: Resumed,
  clock: PhaseClock,
): CheckpointResult {
  const pauses = [...committed.paused.values()].flat();
  const pauseTimes = pauses.map((p) => p.at);
  const resumeTimes = [...resumed.resumedAt.values()];
  const saved = new Map([...committed.saved.values()].flat().map((s) => [s.name, s]));
  return {
    cluster: id.cluster,
    checkpointId: id.checkpointId,
    manifest: committed.manifestPath,
    downtimeMs: resumeTimes.length && pauseTimes.length ? Math.max(...resumeTimes) - Math.min(...pauseTimes) : 0,
    pauseSkewMs: spread(pauseTimes),
    resumeSkewMs: spread(resumeTimes),
    totalBytes: [...saved.values()].reduce((sum, s) => sum + s.size, 0),
    phases: clock.phases,
    vms: pauses
      .map((p) => {
        const resumedAt = resumed.resumedAt.get(p.name);
        return {
          name: p.name,
          host: committed.placement[p.name] ?? '',
          pausedAt: p.at,
          savedAt: saved.get(p.name)?.finishedAt ?? 0,
          ...(resumedAt !== undefined ? { resumedAt } : {}),
          bytes: saved.get(p.name)?.size ?? 0,
        };
      })
      .sort((a, b) => a.name.localeCompare(b.name)),
    resumeFailures: resumed.failures,
  };
}
