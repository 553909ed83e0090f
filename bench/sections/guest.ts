// Section `guest`: 4 real guests (memfill: incompressible RAM) on 2 host workers. Checkpoint downtime and
// save throughput against the direct script and dd, the write-path profile, restarts against the direct
// script, where the time of both goes, and a per-VM timeline of one checkpoint.
import { mkdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { consoleSize } from '../../harness/console';
import type { TestBed } from '../../harness/testbed';
import { maxOf, minOf, summarize, type Summary } from '../../common/stats';
import type { CheckpointResult, RestartResult } from '../../client';
import { assertNoMemfillErrors, ddParallel, ddWrite, deleteOurs, directCheckpointOf, downQuietly, memfillSpec, oursCheckpoint, oursRestart, waitAllConsoles, type DdRun, type DirectProcesses } from '../bed-ops';
import { checkpointTimeline, type CheckpointPair } from '../charts';
import { directRestart, readVmRecords, type DirectRestartResult } from '../direct-qmp';
import {
  directCheckpointSegments,
  directRestartSegments,
  oursCheckpointSegments,
  oursRestartSegments,
  summarizeProfiles,
  summarizeSegments,
  temporalProfile,
  type Segments,
} from '../profile';
import { summaryLines } from '../report';
import { metric, type MetricSink } from '../results';
import { defineSection, type Chart, type RunContext } from '../section';
import { bars } from '../svg';
import { SINKS, saveThrough } from '../write-path';
import { MiB, fmt, range, say } from '../util';

interface GuestConfig {
  vms: number;
  hosts: string[];
  memoryMiB: number;
  fillMiB: number;
  writePathRounds: number;
}

const GOALS = {
  downtime_ratio: { op: '<=', value: 1.15 },
  save_throughput_ratio: { op: '>=', value: 0.9 },
  restart_ratio: { op: '<=', value: 1.2 },
  save_limit_ratio: { op: '>=', value: 0.9 },
  non_io_downtime_ms: { op: '<=', value: 40 },
  restore_ratio: { op: '<=', value: 1.1 },
} as const;

interface GuestRep {
  rep: number;
  order: string;
  ours: { downtimeMs: number; pauseSkewMs: number; resumeSkewMs: number; totalBytes: number; wallMs: number; savePhaseMs: number; saveHostMs: number; phases: CheckpointResult['phases'] };
  direct: { downtimeMs: number; pauseSkewMs: number; resumeSkewMs: number; totalBytes: number; wallMs: number; savePhaseMs: number; saveHostMs: number };
  dd: DdRun;
  ddParallel: DdRun & { streams: number };
  /** The same paused VMs migrated by QEMU into a discarding sink, right next to ours: QEMU's own pace. */
  discard?: { bytes: number; ms: number; bytesPerSec: number };
  /** Our save throughput (host clock: first save start → last file durable) / min(discard, dd). */
  saveLimitRatio?: number;
  downtimeRatio: number;
  /** Our non-I/O downtime (downtime minus first save start → last file durable) added to direct's downtime. */
  downtimeRatioIoCorrected: number;
  oursNonIoMs: number;
  directNonIoMs: number;
  /** 1-minute load average when the repetition ended (the machine is shared). */
  loadAverage: number;
  saveThroughputRatio: number;
  saveThroughputRatioHostClock: number;
  directSaveThroughputRatio: number;
}

interface RestartRep {
  rep: number;
  order: string;
  ours: { restartMs: number; restoreMs: number; resumeSkewMs: number; phases: RestartResult['phases'] };
  direct: { restartMs: number; restoreMs: number; resumeSkewMs: number; phases: DirectRestartResult['phases'] };
  restartRatio: number;
  restoreRatio: number;
}

interface GuestResult {
  config: GuestConfig & { cluster: string; stateBytesPerCheckpoint: number | undefined };
  reps: GuestRep[];
  restarts: RestartRep[];
  writePath: Record<string, Summary>;
  /** The opt-in zstd compression on these guests: file bytes / stream bytes, per write-path round. */
  compressedSizeRatio?: number[];
  profile: {
    checkpoint: { ours: Record<string, Summary>; direct: Record<string, Summary>; temporal: Record<string, Summary> };
    restart: { ours: Record<string, Summary>; direct: Record<string, Summary>; temporal: Record<string, Summary> };
  };
  timeline: CheckpointPair | undefined;
}

/** The running cluster the steps of this section share. */
interface Guests {
  bed: TestBed;
  cfg: GuestConfig;
  cluster: string;
  vms: Array<{ name: string; host: string }>;
  consoles: string[];
  ddDir: string;
}

const tput = (bytes: number, ms: number) => bytes / (ms / 1000);

/** Checkpoint repetitions: ours, the direct script and dd side by side. Keeps the newest checkpoint of each. */
async function checkpointReps(g: Guests, reps: number) {
  const { bed, cluster, cfg } = g;
  // Warm-up (caches, JIT, the first workflow tasks), not measured.
  say('guest: warm-up checkpoint (ours + direct)');
  const warm = await oursCheckpoint(bed, cluster);
  const warmDirect = await directCheckpointOf(bed, cluster, cfg.hosts, -1);
  await deleteOurs(bed, cluster, warm.result.checkpointId);
  rmSync(warmDirect.dir, { recursive: true, force: true });

  const out: GuestRep[] = [];
  const oursSegments: Segments[] = [];
  const directSegments: Segments[] = [];
  const temporal: Array<Record<string, number>> = [];
  const timelines: CheckpointPair[] = [];
  let lastOurs: Awaited<ReturnType<typeof oursCheckpoint>> | undefined;
  let lastDirect: Awaited<ReturnType<typeof directCheckpointOf>> | undefined;
  for (const rep of range(reps)) {
    // dd runs right next to ours (before it in even repetitions, after it in odd ones), and ours and direct
    // swap places, so slow drifts of this shared machine hit both sides alike.
    // QEMU into a discarding sink also runs right next to ours: together with dd it is the limit.
    const order = rep % 2 === 0 ? ['dd', 'discard', 'ours', 'direct'] : ['direct', 'ours', 'discard', 'dd'];
    let o: Awaited<ReturnType<typeof oursCheckpoint>> | undefined;
    let d: Awaited<ReturnType<typeof directCheckpointOf>> | undefined;
    let dd: DdRun | undefined;
    let discard: DdRun | undefined;
    const expectedBytes = lastOurs?.result.totalBytes ?? warm.result.totalBytes;
    for (const which of order) {
      if (which === 'ours') o = await oursCheckpoint(bed, cluster);
      else if (which === 'direct') d = await directCheckpointOf(bed, cluster, cfg.hosts, rep);
      else if (which === 'discard') discard = await discardRun(g);
      else dd = await ddWrite(g.ddDir, o?.result.totalBytes ?? expectedBytes);
    }
    if (!o || !d || !dd || !discard) throw new Error('unreachable');
    const ddp = await ddParallel(g.ddDir, o.result.totalBytes, cfg.vms);
    out.push(guestRep(rep, order, o, d.result, dd, ddp, d.wallMs, discard));
    oursSegments.push(oursCheckpointSegments(o.result, o.manifest));
    directSegments.push(directCheckpointSegments(d.result));
    const p0 = minOf(o.result.vms.map((v) => v.pausedAt));
    const r1 = maxOf(o.result.vms.map((v) => v.resumedAt ?? p0));
    temporal.push(await temporalProfile(bed, o.manifest.workflowId, p0, r1));
    timelines.push({ ours: o, direct: d.result });
    const r = out[out.length - 1] as GuestRep;
    say(
      `guest: rep ${rep + 1}/${reps}: downtime ours ${o.result.downtimeMs} ms / direct ${d.result.downtimeMs} ms (non-I/O ${r.oursNonIoMs} / ${r.directNonIoMs}); ` +
        `${(o.result.totalBytes / MiB).toFixed(0)} MiB saved at ${(tput(o.result.totalBytes, r.ours.saveHostMs) / MiB).toFixed(0)} MiB/s ` +
        `(direct ${(tput(d.result.totalBytes, r.direct.saveHostMs) / MiB).toFixed(0)}, QEMU→discard ${(discard.bytesPerSec / MiB).toFixed(0)}, dd ${(dd.bytesPerSec / MiB).toFixed(0)}, ${cfg.vms}×dd ${(ddp.bytesPerSec / MiB).toFixed(0)} MiB/s; limit ratio ${fmt(r.saveLimitRatio ?? Number.NaN)})`,
    );
    if (lastOurs) await deleteOurs(bed, cluster, lastOurs.result.checkpointId);
    if (lastDirect) rmSync(lastDirect.dir, { recursive: true, force: true });
    lastOurs = o;
    lastDirect = d;
  }
  if (!lastOurs || !lastDirect) throw new Error('no checkpoints');
  assertNoMemfillErrors(g.consoles);
  // The timeline: the rep with the median downtime ratio.
  const byRatio = [...out].sort((a, b) => a.downtimeRatio - b.downtimeRatio);
  const timeline = timelines[byRatio[Math.floor(byRatio.length / 2)]?.rep ?? 0];
  return {
    reps: out,
    lastOurs,
    lastDirect,
    timeline,
    profile: { ours: summarizeSegments(oursSegments), direct: summarizeSegments(directSegments), temporal: summarizeProfiles(temporal) },
  };
}

function guestRep(
  rep: number,
  order: string[],
  o: Awaited<ReturnType<typeof oursCheckpoint>>,
  d: Awaited<ReturnType<typeof directCheckpointOf>>['result'],
  dd: DdRun,
  ddp: DdRun & { streams: number },
  directWallMs: number,
  discard: DdRun,
): GuestRep {
  const savePhaseMs = (o.result.phases['save']?.end ?? Number.NaN) - (o.result.phases['save']?.start ?? Number.NaN);
  const saveHostMs = maxOf(o.manifest.vms.map((v) => v.timings.savedAt)) - minOf(o.manifest.vms.map((v) => v.timings.saveStartedAt));
  const dSavePhaseMs = d.phases.save.end - d.phases.save.start;
  const dSaveHostMs = maxOf(d.vms.map((v) => v.savedAt)) - minOf(d.vms.map((v) => v.saveStartedAt));
  return {
    rep,
    order: order.join(','),
    ours: {
      downtimeMs: o.result.downtimeMs,
      pauseSkewMs: o.result.pauseSkewMs,
      resumeSkewMs: o.result.resumeSkewMs,
      totalBytes: o.result.totalBytes,
      wallMs: o.wallMs,
      savePhaseMs,
      saveHostMs,
      phases: o.result.phases,
    },
    direct: {
      downtimeMs: d.downtimeMs,
      pauseSkewMs: d.pauseSkewMs,
      resumeSkewMs: d.resumeSkewMs,
      totalBytes: d.totalBytes,
      wallMs: directWallMs,
      savePhaseMs: dSavePhaseMs,
      saveHostMs: dSaveHostMs,
    },
    dd,
    ddParallel: ddp,
    discard,
    saveLimitRatio: tput(o.result.totalBytes, saveHostMs) / Math.min(discard.bytesPerSec, dd.bytesPerSec),
    downtimeRatio: o.result.downtimeMs / d.downtimeMs,
    downtimeRatioIoCorrected: (d.downtimeMs + (o.result.downtimeMs - saveHostMs) - (d.downtimeMs - dSaveHostMs)) / d.downtimeMs,
    oursNonIoMs: o.result.downtimeMs - saveHostMs,
    directNonIoMs: d.downtimeMs - dSaveHostMs,
    loadAverage: +(os.loadavg()[0] ?? 0).toFixed(2),
    saveThroughputRatio: tput(o.result.totalBytes, savePhaseMs) / dd.bytesPerSec,
    saveThroughputRatioHostClock: tput(o.result.totalBytes, saveHostMs) / dd.bytesPerSec,
    directSaveThroughputRatio: tput(d.totalBytes, dSavePhaseMs) / dd.bytesPerSec,
  };
}

/** The guests paused and migrated by QEMU into a discarding sink (what QEMU alone can deliver), then resumed. */
async function discardRun(g: Guests): Promise<DdRun> {
  const records = readVmRecords(g.cfg.hosts.map((h) => g.bed.hostStateDir(h)), g.cluster);
  const wpDir = join(g.bed.dir, 'wp');
  mkdirSync(wpDir, { recursive: true });
  const r = await saveThrough(records, wpDir, 'discard');
  return { bytes: r.bytes, ms: r.ms, bytesPerSec: tput(r.bytes, r.ms) };
}

/** Write path profile: the same VMs saved into different sinks, rotated, with dd in the same rounds. */
async function writePathRounds(g: Guests): Promise<{ writePath: Record<string, Summary>; compressedSizeRatio: number[] }> {
  const wpDir = join(g.bed.dir, 'wp');
  mkdirSync(wpDir, { recursive: true });
  const writePath: Record<string, number[]> = {};
  const compressedSizeRatio: number[] = [];
  const records = readVmRecords(g.cfg.hosts.map((h) => g.bed.hostStateDir(h)), g.cluster);
  for (const round of range(g.cfg.writePathRounds)) {
    const order = [...SINKS.slice(round % SINKS.length), ...SINKS.slice(0, round % SINKS.length)];
    let bytes = 0;
    for (const sink of order) {
      const r = await saveThrough(records, wpDir, sink);
      bytes = r.bytes;
      (writePath[sink] ??= []).push(r.bytes / MiB / (r.ms / 1000));
      if (sink === 'zstd') compressedSizeRatio.push(r.fileBytes / r.bytes);
    }
    (writePath['dd (1 stream)'] ??= []).push((await ddWrite(g.ddDir, bytes)).bytesPerSec / MiB);
    (writePath[`dd (${g.cfg.vms} streams)`] ??= []).push((await ddParallel(g.ddDir, bytes, g.cfg.vms)).bytesPerSec / MiB);
    say(`guest: write path round ${round + 1}/${g.cfg.writePathRounds}: ${Object.entries(writePath).map(([k, v]) => `${k} ${(v[v.length - 1] ?? 0).toFixed(0)}`).join(', ')} MiB/s`);
  }
  assertNoMemfillErrors(g.consoles);
  return { writePath: Object.fromEntries(Object.entries(writePath).map(([k, v]) => [k, summarize(v, 1)])), compressedSizeRatio };
}

/** Restarts: every VM killed before each; both restore the newest checkpoint each made. */
async function restartReps(g: Guests, procs: DirectProcesses, reps: number, oursId: string, directDir: string) {
  const { bed } = g;
  const out: RestartRep[] = [];
  const oursSegs: Segments[] = [];
  const directSegs: Segments[] = [];
  const temporal: Array<Record<string, number>> = [];
  const killAll = async () => {
    await bed.killAllVms();
    await procs.killAll();
  };
  for (const rep of range(reps)) {
    const oursFirst = rep % 2 === 1;
    let o: Awaited<ReturnType<typeof oursRestart>> | undefined;
    let d: DirectRestartResult | undefined;
    for (const which of oursFirst ? ['ours', 'direct'] : ['direct', 'ours']) {
      await killAll();
      if (which === 'ours') {
        const from = g.consoles.map((c) => consoleSize(c));
        o = await oursRestart(bed, g.cluster, oursId);
        await waitAllConsoles(g.consoles, /^MEMFILL ALIVE/m, from, 30_000);
        assertNoMemfillErrors(g.consoles);
      } else {
        const runDir = join(bed.dir, 'dr', String(rep));
        d = await directRestart(join(directDir, 'manifest.json'), runDir, (pid) => procs.add(pid));
        const dConsoles = g.vms.map((v) => join(runDir, v.name, 'serial0.log'));
        await waitAllConsoles(dConsoles, /^MEMFILL ALIVE/m, [], 30_000);
        assertNoMemfillErrors(dConsoles);
      }
    }
    if (!o || !d) throw new Error('unreachable');
    const oLast = maxOf(o.r.vms.map((v) => v.resumedAt));
    const oRestartMs = oLast - o.t0;
    out.push({
      rep,
      order: oursFirst ? 'ours,direct' : 'direct,ours',
      ours: { restartMs: oRestartMs, restoreMs: o.r.restoreMs, resumeSkewMs: o.r.resumeSkewMs, phases: o.r.phases },
      direct: { restartMs: d.restartMs, restoreMs: d.restoreMs, resumeSkewMs: d.resumeSkewMs, phases: d.phases },
      restartRatio: oRestartMs / d.restartMs,
      restoreRatio: o.r.restoreMs / d.restoreMs,
    });
    oursSegs.push(oursRestartSegments(o.r, o.t0));
    directSegs.push(directRestartSegments(d));
    temporal.push(await temporalProfile(bed, o.workflowId, o.t0, oLast));
    say(`guest: restart rep ${rep + 1}/${reps}: ours ${oRestartMs} ms (restore ${o.r.restoreMs}) / direct ${d.restartMs} ms (restore ${d.restoreMs})`);
  }
  await killAll();
  return { restarts: out, profile: { ours: summarizeSegments(oursSegs), direct: summarizeSegments(directSegs), temporal: summarizeProfiles(temporal) } };
}

async function run(ctx: RunContext, cfg: GuestConfig): Promise<GuestResult> {
  const { bed } = ctx;
  const cluster = 'g';
  const vms = range(cfg.vms).map((i) => ({ name: `g${i}`, host: cfg.hosts[i % cfg.hosts.length] as string }));
  say(`guest: launching ${cfg.vms} guests of ${cfg.memoryMiB} MiB (memfill ${cfg.fillMiB} MiB) on hosts ${cfg.hosts.join(', ')}`);
  await bed.vccr.up(memfillSpec(bed, cluster, vms, cfg.memoryMiB, cfg.fillMiB));
  const consoles = vms.map((v) => bed.consoleLog(v.host, cluster, v.name));
  await waitAllConsoles(consoles, /^MEMFILL READY/m);
  const ddDir = join(bed.dir, 'dd');
  mkdirSync(ddDir, { recursive: true });
  // The store is <bed>/store: dd writes beside it, on the same filesystem.
  if (statSync(ddDir).dev !== statSync(bed.dir).dev) throw new Error('dd folder and store are on different filesystems');
  const g: Guests = { bed, cfg, cluster, vms, consoles, ddDir };

  const checkpoints = await checkpointReps(g, ctx.reps);
  const { writePath, compressedSizeRatio } = await writePathRounds(g);
  const restarts = await restartReps(g, ctx.procs, ctx.reps, checkpoints.lastOurs.result.checkpointId, checkpoints.lastDirect.dir);
  await downQuietly(bed, cluster);
  return {
    config: { ...cfg, cluster, stateBytesPerCheckpoint: checkpoints.reps[0]?.ours.totalBytes },
    reps: checkpoints.reps,
    restarts: restarts.restarts,
    writePath,
    compressedSizeRatio,
    profile: { checkpoint: checkpoints.profile, restart: restarts.profile },
    timeline: checkpoints.timeline,
  };
}

function derive(g: GuestResult, _cfg: GuestConfig, sink: MetricSink): void {
  const m = (name: string, values: number[], unit: string, what: string) => sink.metric(name, metric(values, unit, what));
  sink.headline('downtime_ratio', 'downtime_ratio (ours/direct)', metric(g.reps.map((r) => r.downtimeRatio), '', 'checkpoint downtime (first pause → last resume), workflows / direct QMP script, paired per repetition', GOALS.downtime_ratio));
  sink.headline(
    'save_throughput_ratio',
    'save_throughput_ratio (ours/dd)',
    metric(
      g.reps.map((r) => r.saveThroughputRatio),
      '',
      'state bytes made durable per second during the save phase (workflow clock), / dd if=/dev/zero bs=1M conv=fdatasync of the same byte count on the same filesystem',
      GOALS.save_throughput_ratio,
    ),
  );
  sink.headline('restart_ratio', 'restart_ratio (ours/direct)', metric(g.restarts.map((r) => r.restartRatio), '', 'restart (call → last VM resumed, checksums verified first by both), workflows / direct QMP script', GOALS.restart_ratio));
  if (g.reps.every((r) => r.saveLimitRatio !== undefined)) {
    sink.headline(
      'save_limit_ratio',
      'save_limit_ratio (ours/min(QEMU→discard, dd))',
      metric(
        g.reps.map((r) => r.saveLimitRatio ?? Number.NaN),
        '',
        "state bytes / (first save start → last file durable, host clock), divided by the lower of QEMU's own rate into a discarding sink (same paused VMs) and dd conv=fdatasync of the same bytes on the store's filesystem; paired per repetition",
        GOALS.save_limit_ratio,
      ),
    );
  }
  sink.headline(
    'non_io_downtime_ms',
    'non_io_downtime_ms (4 guests, 2 hosts)',
    metric(g.reps.map((r) => r.ours.downtimeMs - r.ours.saveHostMs), 'ms', 'downtime minus the save I/O window (first save start → last file durable)', GOALS.non_io_downtime_ms),
  );
  sink.headline('restore_ratio', 'restore_ratio (ours/direct)', metric(g.restarts.map((r) => r.restoreRatio), '', 'launch start → last resume, workflows / direct QMP script, paired per repetition', GOALS.restore_ratio));
  m('downtime ours (ms)', g.reps.map((r) => r.ours.downtimeMs), 'ms', 'workflows');
  m('downtime direct (ms)', g.reps.map((r) => r.direct.downtimeMs), 'ms', 'direct QMP script');
  m('downtime overhead (ms)', g.reps.map((r) => r.ours.downtimeMs - r.direct.downtimeMs), 'ms', 'paired difference');
  // From the raw fields, so that results saved by earlier versions re-render (--report).
  const oursNonIo = g.reps.map((r) => r.ours.downtimeMs - r.ours.saveHostMs);
  const directNonIo = g.reps.map((r) => r.direct.downtimeMs - r.direct.saveHostMs);
  m('non-I/O downtime ours (ms)', oursNonIo, 'ms', 'downtime minus first save start → last file durable');
  m('non-I/O downtime direct (ms)', directNonIo, 'ms', 'the same for the direct script');
  m(
    'downtime ratio, I/O noise removed',
    g.reps.map((r, i) => (r.direct.downtimeMs + (oursNonIo[i] ?? 0) - (directNonIo[i] ?? 0)) / r.direct.downtimeMs),
    '',
    "(direct downtime + our non-I/O downtime − direct's non-I/O downtime) / direct downtime: the orchestration's share, without the two save I/O phases' run-to-run noise",
  );
  if (g.reps.every((r) => r.loadAverage !== undefined)) m('load average during guest reps', g.reps.map((r) => r.loadAverage), '', '1-minute load average after each repetition (2 cores)');
  m('save ratio, host clock (ours/dd)', g.reps.map((r) => r.saveThroughputRatioHostClock), '', 'first save start → last file durable, as the hosts measured it');
  m('save ratio direct (direct/dd)', g.reps.map((r) => r.directSaveThroughputRatio), '', 'the write path without orchestration');
  m('dd throughput (MiB/s)', g.reps.map((r) => r.dd.bytesPerSec / MiB), 'MiB/s', 'dd conv=fdatasync');
  m(`save ratio vs ${g.config.vms} parallel dd`, g.reps.map((r) => r.ours.totalBytes / (r.ours.savePhaseMs / 1000) / r.ddParallel.bytesPerSec), '', 'same parallelism as the VMs: one dd per VM, sharing the bytes');
  m('save throughput ours (MiB/s)', g.reps.map((r) => r.ours.totalBytes / MiB / (r.ours.savePhaseMs / 1000)), 'MiB/s', 'save phase');
  m('save throughput ours, host clock (MiB/s)', g.reps.map((r) => r.ours.totalBytes / MiB / (r.ours.saveHostMs / 1000)), 'MiB/s', 'first save start → last file durable');
  if (g.reps.every((r) => r.discard)) m('QEMU → discard (MiB/s)', g.reps.map((r) => (r.discard?.bytesPerSec ?? Number.NaN) / MiB), 'MiB/s', 'the same paused VMs migrated into a discarding sink, next to ours');
  if (g.compressedSizeRatio?.length) {
    sink.headline('compressed_size_ratio', 'compressed_size_ratio (zstd, test guests)', metric(g.compressedSizeRatio, '', 'opt-in stateCompression zstd: state file bytes / migration stream bytes, write-path rounds (memfill guests: random RAM)'));
    const z = g.writePath['zstd'];
    if (z) m('zstd save throughput (MiB/s)', z.values, 'MiB/s', 'migration stream bytes per second through the compressing receiver (write-path rounds)');
  }
  m('restore-only ratio (ours/direct)', g.restarts.map((r) => r.restoreRatio), '', 'launch start → last resume (no checksum pass, no lock)');
  m('restart ours (ms)', g.restarts.map((r) => r.ours.restartMs), 'ms', 'workflows');
  m('restart direct (ms)', g.restarts.map((r) => r.direct.restartMs), 'ms', 'direct');
  m('guest pause skew ours (ms)', g.reps.map((r) => r.ours.pauseSkewMs), 'ms', '4 guests on 2 hosts');
  m('guest resume skew ours (ms)', g.reps.map((r) => r.ours.resumeSkewMs), 'ms', '4 guests on 2 hosts');
}

const WRITE_PATH_LABELS: Record<string, string> = {
  discard: 'QEMU → socket → discard',
  'no-hash': 'page cache, fsync at end, no hash',
  'flush-as-you-go': 'page cache + sha256, fdatasync / 64 MiB',
  product: 'product: O_DIRECT, sha256 on shared thread',
  zstd: 'product + zstd (stateCompression)',
};

function charts(g: GuestResult, cfg: GuestConfig): Chart[] {
  const out: Chart[] = [];
  if (g.timeline) {
    out.push({ file: 'timeline.svg', svg: checkpointTimeline(`One checkpoint of ${cfg.vms} guests, per VM: workflows vs direct QMP script (same VMs, same run)`, g.timeline) });
  }
  const rows = Object.entries(g.writePath).map(([k, v]) => ({
    label: WRITE_PATH_LABELS[k] ?? k,
    value: v.median,
    lo: v.min,
    hi: v.max,
    color: k.startsWith('dd') ? '#7f7f7f' : k === 'product' ? '#d62728' : '#1f77b4',
  }));
  // The limit the product is measured against: the slower of QEMU alone and dd.
  const limit = Math.min(g.writePath['discard']?.median ?? Number.NaN, g.writePath['dd (1 stream)']?.median ?? Number.NaN);
  out.push({
    file: 'write-path.svg',
    svg: bars(
      `Save write path, ${cfg.vms} guests saved at once (${fmt((g.config.stateBytesPerCheckpoint ?? 0) / MiB, 0)} MiB)`,
      rows,
      'MiB/s (median, min–max)',
      "Same paused VMs, sinks rotated per round; dd writes /dev/zero with conv=fdatasync into the store's filesystem.",
      Number.isFinite(limit) ? { value: limit, label: `limit: min(QEMU → discard, dd) = ${fmt(limit, 0)} MiB/s` } : undefined,
    ),
  });
  return out;
}

function report(g: GuestResult, cfg: GuestConfig): string {
  let text = '';
  for (const kind of ['checkpoint', 'restart'] as const) {
    text += `\nWhere the time goes: ${kind} of ${cfg.vms} guests (median ms)\n`;
    const o = g.profile[kind].ours;
    const d = g.profile[kind].direct;
    const w = Math.max(...Object.keys(o).map((k) => k.length));
    text += `  ${'segment'.padEnd(w)}  ${'workflows'.padStart(9)}  ${'direct'.padStart(8)}  ${'extra'.padStart(8)}\n`;
    for (const k of Object.keys(o)) {
      const om = o[k]?.median ?? Number.NaN;
      const dm = d[k]?.median ?? Number.NaN;
      text += `  ${k.padEnd(w)}  ${fmt(om, 0).padStart(9)}  ${fmt(dm, 0).padStart(8)}  ${fmt(om - dm, 0).padStart(8)}\n`;
    }
  }
  const how = '(median ms; each ms goes to what the workflow was waiting for)';
  text += summaryLines(`Temporal view of the checkpoint downtime, ${cfg.vms} guests ${how}`, g.profile.checkpoint.temporal);
  text += summaryLines(`Temporal view of the restart (call → last resume), ${cfg.vms} guests ${how}`, g.profile.restart.temporal);
  text += summaryLines(`Save write path, ${cfg.vms} guests at once (median MiB/s, min–max)`, g.writePath, false);
  return text;
}

export const guestSection = defineSection<GuestConfig, GuestResult>({
  name: 'guest',
  about: 'real guests on 2 hosts: downtime, save throughput, write path, restart, profiles',
  config: {
    full: { vms: 4, hosts: ['a', 'b'], memoryMiB: 384, fillMiB: 256, writePathRounds: 3 },
    quick: { vms: 4, hosts: ['a', 'b'], memoryMiB: 192, fillMiB: 80, writePathRounds: 1 },
  },
  hosts: (cfg) => cfg.hosts,
  run,
  derive,
  charts,
  report,
});
