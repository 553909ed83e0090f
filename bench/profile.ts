// Where the time of one checkpoint or restart goes: consecutive segments of the downtime (workflows and
// direct script side by side), and the Temporal view (what the workflow was waiting for, from its history).
import type { TestBed } from '../harness/testbed';
import { maxOf, minOf, summarize, type Summary } from '../common/stats';
import type { CheckpointResult, Manifest, RestartResult } from '../client';
import type { DirectCheckpointResult, DirectRestartResult } from './direct-qmp';
import { attribute, historySpans } from './history';

export type Segments = Record<string, number>;

/**
 * Splits our downtime (first pause → last resume) into consecutive segments, from the hosts' VM times. Stop
 * mode v2 has no workflow step between a VM's stop and its save, nor between its save and its cont: what
 * the workflow adds shows in the last segment (a save that ends before every host reported its pause waits
 * for that barrier).
 */
export function oursCheckpointSegments(r: CheckpointResult, m: Manifest): Segments {
  return checkpointSegments(
    r.vms.map((v) => v.pausedAt),
    m.vms.map((v) => v.timings.saveStartedAt),
    m.vms.map((v) => v.timings.savedAt),
    r.vms.map((v) => v.resumedAt ?? Number.NaN),
  );
}

export function directCheckpointSegments(r: DirectCheckpointResult): Segments {
  return checkpointSegments(
    r.vms.map((v) => v.pausedAt),
    r.vms.map((v) => v.saveStartedAt),
    r.vms.map((v) => v.savedAt),
    r.vms.map((v) => v.resumedAt),
  );
}

function checkpointSegments(pauses: number[], saveStarts: number[], saved: number[], resumes: number[]): Segments {
  const P1 = maxOf(pauses);
  const S0 = minOf(saveStarts);
  const S1 = maxOf(saved);
  return {
    'pause skew (stop on every VM)': P1 - minOf(pauses),
    'last pause → first save start (freeze, checks; < 0: saves start before the last pause)': S0 - P1,
    'save I/O (first start → last file durable)': S1 - S0,
    'last file durable → last cont': maxOf(resumes) - S1,
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
