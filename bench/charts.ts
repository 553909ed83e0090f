// Chart pieces more than one section draws: a median-with-whiskers point, and one checkpoint as per-VM
// timelines (workflows above the direct script).
import { minOf, summarize } from '../common/stats';
import type { CheckpointResult, Manifest } from '../client';
import type { DirectCheckpointResult } from './direct-qmp';
import { timeline, type TimelineGroup } from './svg';
import { MiB, fmt } from './util';

export function pointOf(x: number, values: number[], scale = 1): { x: number; y: number; lo: number; hi: number } {
  const s = summarize(values.map((v) => v * scale));
  return { x, y: s.median, lo: s.min, hi: s.max };
}

export interface CheckpointPair {
  ours: { result: CheckpointResult; manifest: Manifest };
  direct: DirectCheckpointResult;
}

export function checkpointTimeline(title: string, tl: CheckpointPair): string {
  const m = tl.ours.manifest;
  const r = tl.ours.result;
  const resumed = new Map(r.vms.map((v) => [v.name, v.resumedAt ?? 0]));
  const t0 = minOf(m.vms.map((v) => v.timings.pausedAt));
  const colors = {
    waiting: { color: '#f2b134', label: 'paused, waiting to save' },
    save: { color: '#3b7dd8', label: 'saving (migrate → file, sha256, fsync)' },
    saved: { color: '#c9c9c9', label: 'saved, waiting for commit + resume' },
  };
  const d = tl.direct;
  const groups: TimelineGroup[] = [
    {
      title: `workflows: downtime ${r.downtimeMs} ms, ${r.totalBytes >= MiB ? `${fmt(r.totalBytes / MiB, 1)} MiB` : `${fmt(r.totalBytes / 1024, 1)} KiB`} of state`,
      t0,
      phases: Object.entries(r.phases)
        .filter(([name]) => name !== 'done')
        .map(([name, p]) => ({ name, start: p.start, end: p.end ?? p.start })),
      rows: [...m.vms]
        .sort((a, b) => a.name.localeCompare(b.name))
        .map((v) => ({
          label: `${v.name} (host ${v.host})`,
          bars: [
            { start: v.timings.pausedAt, end: v.timings.saveStartedAt, kind: 'waiting' },
            { start: v.timings.saveStartedAt, end: v.timings.savedAt, kind: 'save' },
            { start: v.timings.savedAt, end: resumed.get(v.name) ?? v.timings.savedAt, kind: 'saved' },
          ],
          marks: [
            { at: v.timings.pausedAt, kind: 'pause' as const },
            { at: resumed.get(v.name) ?? v.timings.savedAt, kind: 'resume' as const },
          ],
        })),
    },
    {
      title: `direct QMP script: downtime ${d.downtimeMs} ms`,
      t0: minOf(d.vms.map((v) => v.pausedAt)),
      phases: Object.entries(d.phases)
        .filter(([name]) => !['connect', 'prepare'].includes(name))
        .map(([name, p]) => ({ name, start: p.start, end: p.end })),
      rows: [...d.vms]
        .sort((a, b) => a.name.localeCompare(b.name))
        .map((v) => ({
          label: `${v.name} (host ${v.host})`,
          bars: [
            { start: v.pausedAt, end: v.saveStartedAt, kind: 'waiting' },
            { start: v.saveStartedAt, end: v.savedAt, kind: 'save' },
            { start: v.savedAt, end: v.resumedAt, kind: 'saved' },
          ],
          marks: [
            { at: v.pausedAt, kind: 'pause' as const },
            { at: v.resumedAt, kind: 'resume' as const },
          ],
        })),
    },
  ];
  return timeline(title, groups, colors, "Phase band: the orchestrator's phases. Bars: host-side times (manifest, resume record; the script's own clock for direct).");
}

