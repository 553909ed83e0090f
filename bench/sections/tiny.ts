// Section `tiny`: `machine: none` QEMUs (no guest, ~750 bytes of state) on 16 host workers: barrier skew
// for 4/16/64 VMs on 4 and 16 hosts, checkpoint and restart time against VM count, against the direct
// script.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { linearFit, maxOf, median, minOf, type Summary } from '../../common/stats';
import { directCheckpointOf, downQuietly, oursCheckpoint, pairedRestarts, type PairedMs } from '../bed-ops';
import { checkpointTimeline, pointOf, type CheckpointPair } from '../charts';
import { oursCheckpointSegments, summarizeProfiles, summarizeSegments, temporalProfile, type Segments } from '../profile';
import { summaryLines } from '../report';
import { metric, type MetricSink } from '../results';
import { defineSection, type Chart, type RunContext } from '../section';
import { figure, type Panel, type Series } from '../svg';
import { range, say } from '../util';

interface TinyConfig {
  hosts: number;
  fewHosts: number;
  /** Checkpoint + restart scaling points (on `hosts` host workers). */
  counts: number[];
  /** Skew points on `hosts` host workers (checkpoints only, unless also in counts). */
  skewCounts: number[];
  /** Skew points on `fewHosts` host workers. */
  fewHostCounts: number[];
  reps: number;
  restartReps: number;
}

export interface TinyPoint {
  vms: number;
  hosts: number;
  /** ours/direct: downtime; oursWall: call → result; oursEndToEnd: call → last VM resumed. */
  checkpoint: { ours: number[]; direct: number[]; oursWall: number[]; oursEndToEnd?: number[] };
  pauseSkew: PairedMs;
  resumeSkew: PairedMs;
  restart?: PairedMs;
  restore?: PairedMs;
  oursSegments: Record<string, Summary>;
  temporal: Record<string, Summary>;
  /** One checkpoint (the median-downtime repetition) of each, for the timeline chart. */
  timeline?: CheckpointPair;
}

interface TinyResult {
  points: TinyPoint[];
  fits: Record<string, unknown>;
}

const GOALS = {
  pause_skew_ms_16: { op: '<=', value: 20 },
  resume_skew_ms_16: { op: '<=', value: 20 },
  downtime_ratio_tiny_64: { op: '<=', value: 1.5 },
  restart_per_vm_ratio: { op: '<=', value: 1.2 },
  checkpoint_ms_128_tiny: { op: '<=', value: 5000 },
  restart_ms_128_tiny: { op: '<=', value: 5000 },
} as const;

/** Checkpoint repetitions of ours and the direct script, alternating which goes first. */
async function checkpointReps(ctx: RunContext, p: TinyPoint, cluster: string, used: string[], reps: number) {
  const segs: Segments[] = [];
  const profiles: Array<Record<string, number>> = [];
  const kept: Array<CheckpointPair['ours']> = [];
  const keptDirect: Array<CheckpointPair['direct']> = [];
  let lastOurs = '';
  let lastDirect = '';
  for (const rep of range(reps)) {
    for (const which of rep % 2 === 0 ? ['ours', 'direct'] : ['direct', 'ours']) {
      if (which === 'ours') {
        const o = await oursCheckpoint(ctx.bed, cluster);
        p.checkpoint.ours.push(o.result.downtimeMs);
        p.checkpoint.oursWall.push(o.wallMs);
        (p.checkpoint.oursEndToEnd ??= []).push(maxOf(o.result.vms.map((v) => v.resumedAt ?? Number.NaN)) - o.t0);
        p.pauseSkew.ours.push(o.result.pauseSkewMs);
        p.resumeSkew.ours.push(o.result.resumeSkewMs);
        segs.push(oursCheckpointSegments(o.result, o.manifest));
        const p0 = minOf(o.result.vms.map((v) => v.pausedAt));
        profiles.push(await temporalProfile(ctx.bed, o.manifest.workflowId, p0, maxOf(o.result.vms.map((v) => v.resumedAt ?? p0))));
        kept.push(o);
        lastOurs = o.result.checkpointId;
      } else {
        const d = await directCheckpointOf(ctx.bed, cluster, used, rep);
        p.checkpoint.direct.push(d.result.downtimeMs);
        p.pauseSkew.direct.push(d.result.pauseSkewMs);
        p.resumeSkew.direct.push(d.result.resumeSkewMs);
        keptDirect.push(d.result);
        lastDirect = d.dir;
      }
    }
  }
  p.oursSegments = summarizeSegments(segs);
  p.temporal = summarizeProfiles(profiles);
  if (p.vms === 16) {
    const order = range(kept.length).sort((a, b) => (kept[a]?.result.downtimeMs ?? 0) - (kept[b]?.result.downtimeMs ?? 0));
    const mid = order[Math.floor(order.length / 2)] ?? 0;
    const ours = kept[mid];
    const direct = keptDirect[mid];
    if (ours && direct) p.timeline = { ours, direct };
  }
  return { lastOurs, lastDirect };
}

async function tinyPoint(ctx: RunContext, n: number, hostCount: number, reps: number, restartReps: number): Promise<TinyPoint> {
  const { bed, procs } = ctx;
  const cluster = `t${n}-h${hostCount}`;
  const hostIds = range(hostCount).map((i) => `h${i}`);
  const vms = range(n).map((i) => ({ name: `v${String(i).padStart(3, '0')}`, host: hostIds[i % hostCount] as string, memoryMiB: 16, machine: 'none' as const }));
  const used = [...new Set(vms.map((v) => v.host))];
  await bed.vccr.up({ cluster, store: bed.store, pauseBoundSeconds: 120, hosts: Object.fromEntries(used.map((h) => [h, {}])), vms });
  await oursCheckpoint(bed, cluster); // warm-up
  const p: TinyPoint = {
    vms: n,
    hosts: hostCount,
    checkpoint: { ours: [], direct: [], oursWall: [], oursEndToEnd: [] },
    pauseSkew: { ours: [], direct: [] },
    resumeSkew: { ours: [], direct: [] },
    oursSegments: {},
    temporal: {},
  };
  const last = await checkpointReps(ctx, p, cluster, used, reps);
  if (restartReps > 0) {
    p.restart = { ours: [], direct: [] };
    p.restore = { ours: [], direct: [] };
    await pairedRestarts(bed, procs, cluster, last.lastOurs, last.lastDirect, restartReps, { restart: p.restart, restore: p.restore });
  }
  await bed.killAllVms();
  await procs.killAll();
  await downQuietly(bed, cluster);
  rmSync(join(bed.dir, 'dr', cluster), { recursive: true, force: true });
  say(
    `tiny: ${n} VMs on ${hostCount} hosts: downtime ours ${median(p.checkpoint.ours)} / direct ${median(p.checkpoint.direct)} ms, ` +
      `skew pause ${median(p.pauseSkew.ours)} resume ${median(p.resumeSkew.ours)} ms` +
      (p.restart ? `, restart ours ${median(p.restart.ours)} / direct ${median(p.restart.direct)} ms` : ''),
  );
  return p;
}

async function run(ctx: RunContext, t: TinyConfig): Promise<TinyResult> {
  const points: TinyPoint[] = [];
  const many = [...new Set([...t.counts, ...t.skewCounts])].sort((a, b) => a - b);
  for (const n of many) points.push(await tinyPoint(ctx, n, t.hosts, t.reps, t.counts.includes(n) ? t.restartReps : 0));
  for (const n of t.fewHostCounts) points.push(await tinyPoint(ctx, n, t.fewHosts, t.reps, 0));
  return { points, fits: {} };
}

function derive(result: TinyResult, cfg: TinyConfig, sink: MetricSink): void {
  const tiny = result.points;
  const at = (vms: number, hosts: number) => tiny.find((p) => p.vms === vms && p.hosts === hosts);
  const big = cfg.hosts;
  const p16 = at(16, big);
  if (p16) {
    sink.headline('pause_skew_ms_16', 'pause_skew_ms_16 (16 VMs, 16 hosts)', metric(p16.pauseSkew.ours, 'ms', `16 tiny VMs on ${big} host workers`, GOALS.pause_skew_ms_16));
    sink.headline('resume_skew_ms_16', 'resume_skew_ms_16 (16 VMs, 16 hosts)', metric(p16.resumeSkew.ours, 'ms', `16 tiny VMs on ${big} host workers`, GOALS.resume_skew_ms_16));
  }
  const p64 = at(64, big);
  if (p64) {
    const ratios = p64.checkpoint.ours.map((v, i) => v / (p64.checkpoint.direct[i] ?? Number.NaN));
    sink.headline('downtime_ratio_tiny_64', `downtime_ratio_tiny_64 (64 VMs, ${big} hosts)`, metric(ratios, '', `checkpoint downtime of 64 tiny VMs on ${big} host workers, workflows / direct QMP script, paired per repetition`, GOALS.downtime_ratio_tiny_64));
  }
  const p128 = at(128, big);
  if (p128?.checkpoint.oursEndToEnd) {
    sink.headline('checkpoint_ms_128_tiny', `checkpoint_ms_128_tiny (${big} hosts)`, metric(p128.checkpoint.oursEndToEnd, 'ms', `checkpoint of 128 tiny VMs on ${big} host workers, client call → last VM resumed`, GOALS.checkpoint_ms_128_tiny));
  }
  if (p128?.restart) {
    sink.headline('restart_ms_128_tiny', `restart_ms_128_tiny (${big} hosts)`, metric(p128.restart.ours, 'ms', `restart of 128 tiny VMs on ${big} host workers, client call → last VM resumed (checksums verified)`, GOALS.restart_ms_128_tiny));
  }
  for (const n of cfg.skewCounts) {
    for (const h of [cfg.fewHosts, big]) {
      const p = at(n, h);
      if (!p) continue;
      const goal = n === 16 ? GOALS.pause_skew_ms_16 : undefined;
      sink.metric(`pause skew ${n} VMs/${h} hosts (ms)`, metric(p.pauseSkew.ours, 'ms', 'workflows', goal));
      sink.metric(`resume skew ${n} VMs/${h} hosts (ms)`, metric(p.resumeSkew.ours, 'ms', 'workflows', goal));
      if (h === big) {
        sink.metric(`pause skew ${n} VMs, direct script (ms)`, metric(p.pauseSkew.direct, 'ms', 'one process, stop on every VM in parallel'));
        sink.metric(`resume skew ${n} VMs, direct script (ms)`, metric(p.resumeSkew.direct, 'ms', 'one process, cont on every VM in parallel'));
      }
    }
  }
  deriveScaling(result, cfg, sink);
}

/** Least-squares cost per VM of a checkpoint and of a restart, ours and direct. */
function deriveScaling(result: TinyResult, cfg: TinyConfig, sink: MetricSink): void {
  const counts = result.points.filter((p) => p.hosts === cfg.hosts && p.restart);
  if (counts.length < 2) return;
  const xs = counts.flatMap((p) => p.checkpoint.ours.map(() => p.vms));
  const fitC = linearFit(xs, counts.flatMap((p) => p.checkpoint.ours));
  const fitCd = linearFit(xs, counts.flatMap((p) => p.checkpoint.direct));
  const xr = counts.flatMap((p) => (p.restart?.ours ?? []).map(() => p.vms));
  const fitR = linearFit(xr, counts.flatMap((p) => p.restart?.ours ?? []));
  const fitRd = linearFit(xr, counts.flatMap((p) => p.restart?.direct ?? []));
  const last = counts[counts.length - 1] as TinyPoint;
  result.fits = { checkpointMsPerVm: { ours: fitC, direct: fitCd }, restartMsPerVm: { ours: fitR, direct: fitRd } };
  // Per restart repetition: the slope over VM count of ours / of direct (repetition i of every count).
  const repsOf = Math.min(...counts.map((p) => Math.min(p.restart?.ours.length ?? 0, p.restart?.direct.length ?? 0)));
  const perRep = range(repsOf).map((i) => {
    const xsI = counts.map((p) => p.vms);
    const ours = linearFit(xsI, counts.map((p) => p.restart?.ours[i] ?? Number.NaN)).slope;
    const direct = linearFit(xsI, counts.map((p) => p.restart?.direct[i] ?? Number.NaN)).slope;
    return ours / direct;
  });
  sink.headline(
    'restart_per_vm_ratio',
    `restart_per_vm_ratio (tiny VMs, ${cfg.hosts} hosts)`,
    metric(perRep, '', `least-squares slope of restart time (call → last resume) over VM count (${counts.map((p) => p.vms).join(', ')}), workflows / direct, per restart repetition`, GOALS.restart_per_vm_ratio),
  );
  const slope = (name: string, value: number, what: string, n: number) => sink.metric(name, { ...metric([value], 'ms/VM', what), n });
  slope('checkpoint cost per tiny VM, ours (ms/VM)', fitC.slope, 'least-squares slope of downtime vs VM count', xs.length);
  slope('checkpoint cost per tiny VM, direct (ms/VM)', fitCd.slope, 'least-squares slope', xs.length);
  slope('restart cost per tiny VM, ours (ms/VM)', fitR.slope, 'least-squares slope', xr.length);
  slope('restart cost per tiny VM, direct (ms/VM)', fitRd.slope, 'least-squares slope', xr.length);
  sink.metric(`downtime ratio at ${last.vms} tiny VMs`, metric(last.checkpoint.ours.map((v, i) => v / (last.checkpoint.direct[i] ?? Number.NaN)), '', 'workflows / direct'));
}

function charts(result: TinyResult, cfg: TinyConfig): Chart[] {
  const tiny = result.points;
  const out: Chart[] = [];
  const byCount = tiny.filter((p) => p.hosts === cfg.hosts && p.restart);
  if (byCount.length) {
    const xLabel = `tiny VMs (machine none, ${cfg.hosts} host workers)`;
    const panels: Panel[] = [
      {
        title: 'Checkpoint downtime vs VM count',
        xLabel,
        yLabel: 'ms (median, min–max)',
        xLog2: true,
        series: [
          { name: 'workflows', points: byCount.map((p) => pointOf(p.vms, p.checkpoint.ours)) },
          { name: 'direct QMP script', dash: true, points: byCount.map((p) => pointOf(p.vms, p.checkpoint.direct)) },
        ],
      },
      {
        title: 'Restart time vs VM count',
        xLabel,
        yLabel: 'ms, call → last VM resumed',
        xLog2: true,
        series: [
          { name: 'workflows', points: byCount.map((p) => pointOf(p.vms, p.restart?.ours ?? [])) },
          { name: 'direct QMP script', dash: true, points: byCount.map((p) => pointOf(p.vms, p.restart?.direct ?? [])) },
        ],
      },
    ];
    out.push({ file: 'scaling-count.svg', svg: figure('Scaling with VM count (state ≈ 750 B per VM)', panels, { note: 'Same VMs, same run; whiskers: min–max over repetitions.' }) });
  }
  if (tiny.length) {
    const hostsSet = [...new Set(tiny.map((p) => p.hosts))].sort((a, b) => a - b);
    const series = (key: 'pauseSkew' | 'resumeSkew'): Series[] =>
      hostsSet.map((h, i) => ({
        name: `${h} host workers`,
        dash: i > 0,
        points: tiny.filter((p) => p.hosts === h && cfg.skewCounts.includes(p.vms)).map((p) => pointOf(p.vms, p[key].ours)),
      }));
    const goal = { y: 20, label: 'goal at 16 VMs: 20 ms' };
    out.push({
      file: 'skew.svg',
      svg: figure('Barrier skew (first → last VM), workflows', [
        { title: 'Pause skew', xLabel: 'VMs (machine none)', yLabel: 'ms (median, min–max)', xLog2: true, series: series('pauseSkew'), hline: goal },
        { title: 'Resume skew', xLabel: 'VMs (machine none)', yLabel: 'ms (median, min–max)', xLog2: true, series: series('resumeSkew'), hline: goal },
      ]),
    });
  }
  const tiny16 = tiny.find((p) => p.vms === 16 && p.hosts === cfg.hosts)?.timeline;
  if (tiny16) out.push({ file: 'timeline-tiny-16.svg', svg: checkpointTimeline(`One checkpoint of 16 tiny VMs on ${cfg.hosts} host workers: workflows vs direct QMP script`, tiny16) });
  return out;
}

function report(result: TinyResult, cfg: TinyConfig): string {
  const p16 = result.points.find((p) => p.vms === 16 && p.hosts === cfg.hosts);
  return summaryLines(`Temporal view of the checkpoint downtime, 16 tiny VMs on ${cfg.hosts} hosts (median ms; each ms goes to what the workflow was waiting for)`, p16?.temporal);
}

export const tinySection = defineSection<TinyConfig, TinyResult>({
  name: 'tiny',
  about: 'machine-none QEMUs on 16 hosts: barrier skew, checkpoint/restart time against VM count',
  config: {
    full: { hosts: 16, fewHosts: 4, counts: [1, 2, 4, 8, 16, 32, 64, 128], skewCounts: [4, 16, 64], fewHostCounts: [4, 16, 64], reps: 5, restartReps: 3 },
    // Quick: 3 repetitions (2 restarts) per point, so the whole --quick stays within 8 minutes.
    quick: { hosts: 16, fewHosts: 4, counts: [1, 16, 64, 128], skewCounts: [4, 16, 64], fewHostCounts: [16], reps: 3, restartReps: 2 },
  },
  hosts: (cfg) => range(cfg.hosts).map((i) => `h${i}`),
  withReps: (cfg, reps) => ({ ...cfg, reps, restartReps: Math.min(cfg.restartReps, reps) }),
  run,
  derive,
  charts,
  report,
});
