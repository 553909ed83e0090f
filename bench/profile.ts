// Where the time of one checkpoint or restart goes: consecutive segments of the downtime (workflows and
// direct script side by side), and the Temporal view (what the workflow was waiting for, from its history).
import type { TestBed } from '../harness/testbed';
import { maxOf, minOf, summarize, type Summary } from '../common/stats';
import type { CheckpointResult, Manifest, RestartResult } from '../client';
import type { DirectCheckpointResult, DirectRestartResult } from './direct-qmp';
import { attribute, historySpans } from './history';

export type Segments = Record<string, number>;

/** Splits our downtime (first pause → last resume) into consecutive segments. Workflow-clock phases, host-clock VM times. */
export function oursCheckpointSegments(r: CheckpointResult, m: Manifest): Segments {
  const ph = r.phases;
  const pauses = r.vms.map((v) => v.pausedAt);
  const starts = m.vms.map((v) => v.timings.saveStartedAt);
  const saved = m.vms.map((v) => v.timings.savedAt);
  const resumes = r.vms.map((v) => v.resumedAt ?? Number.NaN);
  const P1 = maxOf(pauses);
  const S0 = minOf(starts);
  const S1 = maxOf(saved);
  const R0 = minOf(resumes);
  const at = (name: string, edge: 'start' | 'end') => ph[name]?.[edge] ?? ph[name]?.start ?? Number.NaN;
  return {
    'pause skew (stop on every VM)': P1 - minOf(pauses),
    'last pause → workflow sees barrier': at('pause', 'end') - P1,
    'freeze phase (no disks: no activity)': at('freeze', 'end') - at('freeze', 'start'),
    'save activity dispatch + QMP checks': S0 - at('save', 'start'),
    'save I/O (first start → last file durable)': S1 - S0,
    'save completion (rename, sidecar, progress signal, activity result)': at('save', 'end') - S1,
    'commit (controller activity: manifest)': at('resume', 'start') - at('commit', 'start'),
    'resume activity dispatch': R0 - at('resume', 'start'),
    'resume skew (cont on every VM)': maxOf(resumes) - R0,
  };
}

export function directCheckpointSegments(r: DirectCheckpointResult): Segments {
  const pauses = r.vms.map((v) => v.pausedAt);
  const starts = r.vms.map((v) => v.saveStartedAt);
  const saved = r.vms.map((v) => v.savedAt);
  const resumes = r.vms.map((v) => v.resumedAt);
  return {
    'pause skew (stop on every VM)': maxOf(pauses) - minOf(pauses),
    'last pause → workflow sees barrier': 0,
    'freeze phase (no disks: no activity)': 0,
    'save activity dispatch + QMP checks': minOf(starts) - maxOf(pauses),
    'save I/O (first start → last file durable)': maxOf(saved) - minOf(starts),
    'save completion (rename, sidecar, progress signal, activity result)': r.phases.save.end - maxOf(saved),
    'commit (controller activity: manifest)': r.phases.commit.end - r.phases.commit.start,
    'resume activity dispatch': minOf(resumes) - r.phases.commit.end,
    'resume skew (cont on every VM)': maxOf(resumes) - minOf(resumes),
  };
}

export function oursRestartSegments(r: RestartResult, t0: number): Segments {
  const ph = r.phases;
  const at = (name: string, edge: 'start' | 'end') => ph[name]?.[edge] ?? Number.NaN;
  const resumes = r.vms.map((v) => v.resumedAt);
  return {
    'client call → workflow started, cluster locked': at('validate', 'start') - t0,
    'verify checksums': at('validate', 'end') - at('validate', 'start'),
    'stop old VMs': at('stop-old', 'end') - at('stop-old', 'start'),
    'launch QEMUs (-incoming defer)': at('launch', 'end') - at('launch', 'start'),
    'load states (load barrier)': at('load', 'end') - at('load', 'start'),
    'resume (phase start → last cont)': maxOf(resumes) - at('resume', 'start'),
  };
}

export function directRestartSegments(r: DirectRestartResult): Segments {
  return {
    'client call → workflow started, cluster locked': 0,
    'verify checksums': r.phases.verify.end - r.phases.verify.start,
    'stop old VMs': 0,
    'launch QEMUs (-incoming defer)': r.phases.launch.end - r.phases.launch.start,
    'load states (load barrier)': r.phases.load.end - r.phases.load.start,
    'resume (phase start → last cont)': maxOf(r.vms.map((v) => v.resumedAt)) - r.phases.resume.start,
  };
}

export function summarizeSegments(list: Segments[]): Record<string, Summary> {
  const keys = Object.keys(list[0] ?? {});
  return Object.fromEntries(keys.map((k) => [k, summarize(list.map((s) => s[k] ?? Number.NaN), 1)]));
}

/** Attributes a window of a workflow's life (from its history) to Temporal queues, workflow tasks and activities. */
export async function temporalProfile(bed: TestBed, workflowId: string, from: number, to: number): Promise<Record<string, number>> {
  const spans = await historySpans(await bed.temporal(), workflowId);
  return attribute(spans, from, to);
}

export function summarizeProfiles(list: Array<Record<string, number>>): Record<string, Summary> {
  const keys = [...new Set(list.flatMap((p) => Object.keys(p)))].sort();
  return Object.fromEntries(keys.map((k) => [k, summarize(list.map((p) => p[k] ?? 0), 1)]));
}
