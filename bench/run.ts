// `npm run bench` (scripts/bench.sh → node dist/bench/run.js [--quick] [--only guest,ram,disk,tiny,protect] [--reps N] [--report FILE]):
// how close the workflows come to a hand-written QMP script (bench/direct-qmp.ts) and to what the disk can do
// (`dd conv=fdatasync`), measured side by side in one run on the same VMs. Every figure is a ratio or a
// distribution over repetitions; absolute times are kept in the JSON for reference only.
//
//   guest  4 real guests (memfill: incompressible RAM) on 2 host workers: downtime ratio, save throughput
//          ratio, restart ratio, the time breakdown of both, and a per-VM timeline of one checkpoint.
//   ram    1 real guest of 128 MiB … 2 GiB: checkpoint/restart time against guest RAM, state size on disk.
//   disk   1 real guest writing to a virtio disk: what each checkpoint's frozen disk overlay adds.
//   tiny   `machine: none` QEMUs (no guest) on 16 host workers: barrier skew for 4/16/64 VMs on 4 and 16
//          hosts, checkpoint/restart time against VM count (1 → 128).
//   protect  continuous protection (bench/protect.ts): recovery_ms, protected_overhead_pct, chain_length_after_30.
// Output: a table on stdout, bench/results/latest.json (+ a timestamped copy), SVG charts in bench/results/.
import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { TestBed, guestImageDir } from '../harness/testbed';
import { consoleSize, readConsole, waitForConsole } from '../harness/console';
import { janitor } from '../harness/janitor';
import { identify, terminate, type ProcessIdentity } from '../common/proc';
import type { CheckpointResult, Manifest, RestartResult } from '../client';
import type { ClusterSpecInput } from '../common/spec';
import { directCheckpoint, directRestart, readVmRecords, type DirectCheckpointResult, type DirectRestartResult } from './direct-qmp';
import { fmt, linearFit, summarize, type Summary } from './stats';
import { attribute, historySpans } from './history';
import { SINKS, saveThrough } from './write-path';
import { bars, figure, timeline, type Panel, type Series, type TimelineGroup } from './svg';
import { PROTECT_FULL, PROTECT_QUICK, protectSection, type ProtectBenchResult } from './protect';

const run = promisify(execFile);
const REPO = resolve(__dirname, '..', '..');
const RESULTS = join(REPO, 'bench', 'results');
const MiB = 1024 * 1024;
const BENCH_START = Date.now();

// ---------------------------------------------------------------------------------------------------
// Configuration

interface Config {
  mode: 'quick' | 'full';
  /** Repetitions of every headline measurement (ratios, skews). */
  reps: number;
  guest: { vms: number; hosts: string[]; memoryMiB: number; fillMiB: number; writePathRounds: number };
  ram: { sizes: number[]; reps: number };
  disk: { checkpoints: number; intervalMs: number };
  tiny: {
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
  };
}

const FULL: Config = {
  mode: 'full',
  reps: 5,
  guest: { vms: 4, hosts: ['a', 'b'], memoryMiB: 384, fillMiB: 256, writePathRounds: 3 },
  ram: { sizes: [128, 256, 512, 1024, 2048], reps: 5 },
  disk: { checkpoints: 5, intervalMs: 3000 },
  tiny: { hosts: 16, fewHosts: 4, counts: [1, 2, 4, 8, 16, 32, 64, 128], skewCounts: [4, 16, 64], fewHostCounts: [4, 16, 64], reps: 5, restartReps: 5 },
};

/** A few minutes: the headline figures still from 5 repetitions, the curves from fewer, smaller points. */
const QUICK: Config = {
  mode: 'quick',
  reps: 5,
  guest: { vms: 4, hosts: ['a', 'b'], memoryMiB: 192, fillMiB: 80, writePathRounds: 1 },
  ram: { sizes: [128, 256, 512], reps: 3 },
  disk: { checkpoints: 3, intervalMs: 2000 },
  tiny: { hosts: 16, fewHosts: 4, counts: [1, 4, 16, 64], skewCounts: [4, 16, 64], fewHostCounts: [16], reps: 5, restartReps: 3 },
};

/** How much of a guest's RAM memfill fills (the kernel and initramfs need ~90 MiB of a small guest). */
const fillFor = (ramMiB: number) => (ramMiB <= 256 ? ramMiB - 96 : Math.floor((ramMiB * 3) / 4));

const GOALS = {
  downtime_ratio: { op: '<=', value: 1.15 },
  save_throughput_ratio: { op: '>=', value: 0.9 },
  pause_skew_ms_16: { op: '<=', value: 20 },
  resume_skew_ms_16: { op: '<=', value: 20 },
  restart_ratio: { op: '<=', value: 1.2 },
} as const;

// ---------------------------------------------------------------------------------------------------
// Helpers

function say(msg: string): void {
  process.stderr.write(`[bench ${((Date.now() - BENCH_START) / 1000).toFixed(0).padStart(4)}s] ${msg}\n`);
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const maxOf = (xs: number[]) => Math.max(...xs);
const minOf = (xs: number[]) => Math.min(...xs);
const median = (xs: number[]) => summarize(xs).median;

/** Allocated bytes (du) of a file or of every file under a folder. */
function allocatedBytes(path: string): number {
  try {
    return Number(execFileSync('du', ['-s', '-B1', path], { encoding: 'utf8' }).split('\t')[0]);
  } catch {
    return Number.NaN;
  }
}

function memfillSpec(bed: TestBed, cluster: string, vms: Array<{ name: string; host: string }>, memoryMiB: number, fillMiB: number): ClusterSpecInput {
  const image = guestImageDir();
  return {
    cluster,
    store: bed.store,
    pauseBoundSeconds: 300,
    hosts: Object.fromEntries([...new Set(vms.map((v) => v.host))].map((h) => [h, {}])),
    vms: vms.map((vm) => ({
      name: vm.name,
      host: vm.host,
      memoryMiB,
      boot: {
        kernel: join(image, 'vmlinuz'),
        initrd: join(image, 'initrd.img'),
        append: `console=ttyS0 quiet panic=-1 vccr.hostname=${vm.name} vccr.run=memfill vccr.args=--mb,${fillMiB},--seed,${vm.name.length + memoryMiB}`,
      },
    })),
  };
}

/** One checkpoint through the workflows. */
async function oursCheckpoint(bed: TestBed, cluster: string): Promise<{ result: CheckpointResult; manifest: Manifest; wallMs: number }> {
  const t0 = Date.now();
  const result = await bed.vccr.checkpoint(cluster);
  const wallMs = Date.now() - t0;
  if (!('downtimeMs' in result)) throw new Error('checkpoint did not complete');
  const manifest = JSON.parse(readFileSync(result.manifest, 'utf8')) as Manifest;
  return { result, manifest, wallMs };
}

/** One checkpoint through the direct QMP script, into <bed>/direct/<cluster>/<n>. */
async function directCheckpointOf(bed: TestBed, cluster: string, hosts: string[], n: number): Promise<{ result: DirectCheckpointResult; dir: string; wallMs: number }> {
  const vms = readVmRecords(hosts.map((h) => bed.hostStateDir(h)), cluster);
  const dir = join(bed.dir, 'direct', cluster, String(n));
  const t0 = Date.now();
  const result = await directCheckpoint(vms, dir, cluster);
  return { result, dir, wallMs: Date.now() - t0 };
}

/** `dd if=/dev/zero of=<dir>/dd.bin bs=1M count=<bytes> conv=fdatasync`: the disk's own pace. */
async function ddWrite(dir: string, bytes: number): Promise<{ bytes: number; ms: number; bytesPerSec: number }> {
  const file = join(dir, `dd-${process.pid}.bin`);
  const count = Math.max(1, Math.ceil(bytes / MiB));
  const t0 = process.hrtime.bigint();
  await run('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${count}`, 'conv=fdatasync', 'status=none']);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  rmSync(file, { force: true });
  return { bytes: count * MiB, ms, bytesPerSec: (count * MiB) / (ms / 1000) };
}

/** VMs the direct script launched (not known to any host worker): ended by us. */
class DirectProcesses {
  private ids: ProcessIdentity[] = [];
  add(pid: number): void {
    const id = janitor.trackProcess(pid, 'direct-qmp QEMU') ?? identify(pid);
    if (id) this.ids.push(id);
  }
  async killAll(): Promise<void> {
    for (const id of this.ids) {
      await terminate(id, 'SIGKILL', 2000);
      janitor.untrackProcess(id);
    }
    this.ids = [];
  }
}

async function deleteOurs(bed: TestBed, cluster: string, checkpointId: string): Promise<void> {
  await bed.vccr.checkpoints.delete(cluster, checkpointId).catch((err: unknown) => say(`(could not delete ${checkpointId}: ${(err as Error).message})`));
}

async function downQuietly(bed: TestBed, cluster: string): Promise<void> {
  await bed.vccr.down(cluster, { kill: true }).catch((err: unknown) => say(`(down ${cluster}: ${(err as Error).message})`));
}

/** Waits for a line on every VM's console (after the byte offsets given). */
async function waitAllConsoles(paths: string[], pattern: RegExp, from: number[] = [], timeoutMs = 180_000): Promise<void> {
  await Promise.all(paths.map((p, i) => waitForConsole(p, pattern, { from: from[i] ?? 0, timeoutMs })));
}

function assertNoMemfillErrors(paths: string[]): void {
  for (const p of paths) {
    const bad = readConsole(p).match(/^MEMFILL (?:ERROR|FATAL).*$/m);
    if (bad) throw new Error(`guest memory check failed in ${p}: ${bad[0]}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Profiles: where the time of one checkpoint / restart goes

type Segments = Record<string, number>;

/** Splits our downtime (first pause → last resume) into consecutive segments. Workflow-clock phases, host-clock VM times. */
function oursCheckpointSegments(r: CheckpointResult, m: Manifest): Segments {
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

function directCheckpointSegments(r: DirectCheckpointResult): Segments {
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

function oursRestartSegments(r: RestartResult, t0: number): Segments {
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

function directRestartSegments(r: DirectRestartResult): Segments {
  return {
    'client call → workflow started, cluster locked': 0,
    'verify checksums': r.phases.verify.end - r.phases.verify.start,
    'stop old VMs': 0,
    'launch QEMUs (-incoming defer)': r.phases.launch.end - r.phases.launch.start,
    'load states (load barrier)': r.phases.load.end - r.phases.load.start,
    'resume (phase start → last cont)': maxOf(r.vms.map((v) => v.resumedAt)) - r.phases.resume.start,
  };
}

function summarizeSegments(list: Segments[]): Record<string, Summary> {
  const keys = Object.keys(list[0] ?? {});
  return Object.fromEntries(keys.map((k) => [k, summarize(list.map((s) => s[k] ?? Number.NaN), 1)]));
}

// ---------------------------------------------------------------------------------------------------
// Section: real guests (metrics 1, 2, 4; profile; timeline)

interface GuestRep {
  rep: number;
  order: string;
  ours: { downtimeMs: number; pauseSkewMs: number; resumeSkewMs: number; totalBytes: number; wallMs: number; savePhaseMs: number; saveHostMs: number; phases: CheckpointResult['phases'] };
  direct: { downtimeMs: number; pauseSkewMs: number; resumeSkewMs: number; totalBytes: number; wallMs: number; savePhaseMs: number; saveHostMs: number };
  dd: { bytes: number; ms: number; bytesPerSec: number };
  ddParallel: { bytes: number; ms: number; bytesPerSec: number; streams: number };
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

/** N parallel dd's sharing `bytes` (the same parallelism as N VMs saving at once). */
async function ddParallel(dir: string, bytes: number, streams: number): Promise<{ bytes: number; ms: number; bytesPerSec: number; streams: number }> {
  const count = Math.max(1, Math.ceil(bytes / streams / MiB));
  const t0 = process.hrtime.bigint();
  await Promise.all(
    range(streams).map((i) => run('dd', ['if=/dev/zero', `of=${join(dir, `ddp-${i}.bin`)}`, 'bs=1M', `count=${count}`, 'conv=fdatasync', 'status=none'])),
  );
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  for (const i of range(streams)) rmSync(join(dir, `ddp-${i}.bin`), { force: true });
  const total = count * streams * MiB;
  return { bytes: total, ms, bytesPerSec: total / (ms / 1000), streams };
}

/** Attributes a window of a workflow's life (from its history) to Temporal queues, workflow tasks and activities. */
async function temporalProfile(bed: TestBed, workflowId: string, from: number, to: number): Promise<Record<string, number>> {
  const spans = await historySpans(await bed.temporal(), workflowId);
  return attribute(spans, from, to);
}

function summarizeProfiles(list: Array<Record<string, number>>): Record<string, Summary> {
  const keys = [...new Set(list.flatMap((p) => Object.keys(p)))].sort();
  return Object.fromEntries(keys.map((k) => [k, summarize(list.map((p) => p[k] ?? 0), 1)]));
}

/** Restart through the workflows, returning the workflow id too (for its history). */
async function oursRestart(bed: TestBed, cluster: string, checkpointId: string): Promise<{ r: RestartResult; t0: number; workflowId: string }> {
  const t0 = Date.now();
  const started = await bed.vccr.restart(cluster, { checkpointId, noWait: true });
  if (!('workflowId' in started)) throw new Error('restart was not started');
  const r = (await (await bed.temporal()).workflow.getHandle(started.workflowId).result()) as RestartResult;
  return { r, t0, workflowId: started.workflowId };
}

async function guestSection(bed: TestBed, cfg: Config, procs: DirectProcesses) {
  const g = cfg.guest;
  const cluster = 'g';
  const vms = range(g.vms).map((i) => ({ name: `g${i}`, host: g.hosts[i % g.hosts.length] as string }));
  say(`guest: launching ${g.vms} guests of ${g.memoryMiB} MiB (memfill ${g.fillMiB} MiB) on hosts ${g.hosts.join(', ')}`);
  await bed.vccr.up(memfillSpec(bed, cluster, vms, g.memoryMiB, g.fillMiB));
  const consoles = vms.map((v) => bed.consoleLog(v.host, cluster, v.name));
  await waitAllConsoles(consoles, /^MEMFILL READY/m);
  const ddDir = join(bed.dir, 'dd');
  mkdirSync(ddDir, { recursive: true });
  // The store is <bed>/store: dd writes beside it, on the same filesystem.
  if (statSync(ddDir).dev !== statSync(bed.dir).dev) throw new Error('dd folder and store are on different filesystems');

  // Warm-up (caches, JIT, the first workflow tasks), not measured.
  say('guest: warm-up checkpoint (ours + direct)');
  const warm = await oursCheckpoint(bed, cluster);
  const warmDirect = await directCheckpointOf(bed, cluster, g.hosts, -1);
  await deleteOurs(bed, cluster, warm.result.checkpointId);
  rmSync(warmDirect.dir, { recursive: true, force: true });

  const reps: GuestRep[] = [];
  const oursSegments: Segments[] = [];
  const directSegments: Segments[] = [];
  const temporalCheckpoint: Array<Record<string, number>> = [];
  const timelines: Array<{ ours: { result: CheckpointResult; manifest: Manifest }; direct: DirectCheckpointResult }> = [];
  let lastOurs: { result: CheckpointResult; manifest: Manifest } | undefined;
  let lastDirect: { result: DirectCheckpointResult; dir: string } | undefined;
  for (const rep of range(cfg.reps)) {
    // dd runs right next to ours (before it in even repetitions, after it in odd ones), and ours and direct
    // swap places, so slow drifts of this shared machine hit both sides alike.
    const order = rep % 2 === 0 ? ['dd', 'ours', 'direct'] : ['direct', 'ours', 'dd'];
    let o: Awaited<ReturnType<typeof oursCheckpoint>> | undefined;
    let d: Awaited<ReturnType<typeof directCheckpointOf>> | undefined;
    let dd: Awaited<ReturnType<typeof ddWrite>> | undefined;
    const expectedBytes = lastOurs?.result.totalBytes ?? warm.result.totalBytes;
    for (const which of order) {
      if (which === 'ours') o = await oursCheckpoint(bed, cluster);
      else if (which === 'direct') d = await directCheckpointOf(bed, cluster, g.hosts, rep);
      else dd = await ddWrite(ddDir, o?.result.totalBytes ?? expectedBytes);
    }
    if (!o || !d || !dd) throw new Error('unreachable');
    const ddp = await ddParallel(ddDir, o.result.totalBytes, g.vms);
    const savePhaseMs = (o.result.phases['save']?.end ?? Number.NaN) - (o.result.phases['save']?.start ?? Number.NaN);
    const saveHostMs = maxOf(o.manifest.vms.map((v) => v.timings.savedAt)) - minOf(o.manifest.vms.map((v) => v.timings.saveStartedAt));
    const dSavePhaseMs = d.result.phases.save.end - d.result.phases.save.start;
    const dSaveHostMs = maxOf(d.result.vms.map((v) => v.savedAt)) - minOf(d.result.vms.map((v) => v.saveStartedAt));
    const tput = (bytes: number, ms: number) => bytes / (ms / 1000);
    reps.push({
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
        downtimeMs: d.result.downtimeMs,
        pauseSkewMs: d.result.pauseSkewMs,
        resumeSkewMs: d.result.resumeSkewMs,
        totalBytes: d.result.totalBytes,
        wallMs: d.wallMs,
        savePhaseMs: dSavePhaseMs,
        saveHostMs: dSaveHostMs,
      },
      dd,
      ddParallel: ddp,
      downtimeRatio: o.result.downtimeMs / d.result.downtimeMs,
      downtimeRatioIoCorrected: (d.result.downtimeMs + (o.result.downtimeMs - saveHostMs) - (d.result.downtimeMs - dSaveHostMs)) / d.result.downtimeMs,
      oursNonIoMs: o.result.downtimeMs - saveHostMs,
      directNonIoMs: d.result.downtimeMs - dSaveHostMs,
      loadAverage: +(os.loadavg()[0] ?? 0).toFixed(2),
      saveThroughputRatio: tput(o.result.totalBytes, savePhaseMs) / dd.bytesPerSec,
      saveThroughputRatioHostClock: tput(o.result.totalBytes, saveHostMs) / dd.bytesPerSec,
      directSaveThroughputRatio: tput(d.result.totalBytes, dSavePhaseMs) / dd.bytesPerSec,
    });
    oursSegments.push(oursCheckpointSegments(o.result, o.manifest));
    directSegments.push(directCheckpointSegments(d.result));
    const p0 = minOf(o.result.vms.map((v) => v.pausedAt));
    const r1 = maxOf(o.result.vms.map((v) => v.resumedAt ?? p0));
    temporalCheckpoint.push(await temporalProfile(bed, o.manifest.workflowId, p0, r1));
    timelines.push({ ours: o, direct: d.result });
    say(
      `guest: rep ${rep + 1}/${cfg.reps}: downtime ours ${o.result.downtimeMs} ms / direct ${d.result.downtimeMs} ms; ` +
        `${(o.result.totalBytes / MiB).toFixed(0)} MiB saved at ${(tput(o.result.totalBytes, savePhaseMs) / MiB).toFixed(0)} MiB/s ` +
        `(direct ${(tput(d.result.totalBytes, dSavePhaseMs) / MiB).toFixed(0)}, dd ${(dd.bytesPerSec / MiB).toFixed(0)}, ${g.vms}×dd ${(ddp.bytesPerSec / MiB).toFixed(0)} MiB/s)`,
    );
    if (lastOurs) await deleteOurs(bed, cluster, lastOurs.result.checkpointId);
    if (lastDirect) rmSync(lastDirect.dir, { recursive: true, force: true });
    lastOurs = o;
    lastDirect = d;
  }
  if (!lastOurs || !lastDirect) throw new Error('no checkpoints');
  assertNoMemfillErrors(consoles);

  // Write path profile: the same VMs saved into different sinks, rotated, with dd in the same rounds.
  const wpDir = join(bed.dir, 'wp');
  mkdirSync(wpDir, { recursive: true });
  const wpRounds = g.writePathRounds;
  const writePath: Record<string, number[]> = {};
  const records = readVmRecords(g.hosts.map((h) => bed.hostStateDir(h)), cluster);
  for (const round of range(wpRounds)) {
    const order = [...SINKS.slice(round % SINKS.length), ...SINKS.slice(0, round % SINKS.length)];
    let bytes = 0;
    for (const sink of order) {
      const r = await saveThrough(records, wpDir, sink);
      bytes = r.bytes;
      (writePath[sink] ??= []).push(r.bytes / MiB / (r.ms / 1000));
    }
    (writePath['dd (1 stream)'] ??= []).push((await ddWrite(ddDir, bytes)).bytesPerSec / MiB);
    (writePath[`dd (${g.vms} streams)`] ??= []).push((await ddParallel(ddDir, bytes, g.vms)).bytesPerSec / MiB);
    say(`guest: write path round ${round + 1}/${wpRounds}: ${Object.entries(writePath).map(([k, v]) => `${k} ${(v[v.length - 1] ?? 0).toFixed(0)}`).join(', ')} MiB/s`);
  }
  assertNoMemfillErrors(consoles);

  // Restarts: every VM killed before each; both restore the newest checkpoint each made.
  const restarts: RestartRep[] = [];
  const oursRestartSegs: Segments[] = [];
  const directRestartSegs: Segments[] = [];
  const temporalRestart: Array<Record<string, number>> = [];
  const killAll = async () => {
    await bed.killAllVms();
    await procs.killAll();
  };
  for (const rep of range(cfg.reps)) {
    const oursFirst = rep % 2 === 1;
    let o: { r: RestartResult; t0: number; workflowId: string } | undefined;
    let d: DirectRestartResult | undefined;
    for (const which of oursFirst ? ['ours', 'direct'] : ['direct', 'ours']) {
      await killAll();
      if (which === 'ours') {
        const from = consoles.map((c) => consoleSize(c));
        o = await oursRestart(bed, cluster, lastOurs.result.checkpointId);
        await waitAllConsoles(consoles, /^MEMFILL ALIVE/m, from, 30_000);
        assertNoMemfillErrors(consoles);
      } else {
        const runDir = join(bed.dir, 'dr', String(rep));
        d = await directRestart(join(lastDirect.dir, 'manifest.json'), runDir, (pid) => procs.add(pid));
        const dConsoles = vms.map((v) => join(runDir, v.name, 'serial0.log'));
        await waitAllConsoles(dConsoles, /^MEMFILL ALIVE/m, [], 30_000);
        assertNoMemfillErrors(dConsoles);
      }
    }
    if (!o || !d) throw new Error('unreachable');
    const oLast = maxOf(o.r.vms.map((v) => v.resumedAt));
    const oRestartMs = oLast - o.t0;
    restarts.push({
      rep,
      order: oursFirst ? 'ours,direct' : 'direct,ours',
      ours: { restartMs: oRestartMs, restoreMs: o.r.restoreMs, resumeSkewMs: o.r.resumeSkewMs, phases: o.r.phases },
      direct: { restartMs: d.restartMs, restoreMs: d.restoreMs, resumeSkewMs: d.resumeSkewMs, phases: d.phases },
      restartRatio: oRestartMs / d.restartMs,
      restoreRatio: o.r.restoreMs / d.restoreMs,
    });
    oursRestartSegs.push(oursRestartSegments(o.r, o.t0));
    directRestartSegs.push(directRestartSegments(d));
    temporalRestart.push(await temporalProfile(bed, o.workflowId, o.t0, oLast));
    say(`guest: restart rep ${rep + 1}/${cfg.reps}: ours ${oRestartMs} ms (restore ${o.r.restoreMs}) / direct ${d.restartMs} ms (restore ${d.restoreMs})`);
  }
  await killAll();
  await downQuietly(bed, cluster);

  // The timeline: the rep with the median downtime ratio.
  const byRatio = [...reps].sort((a, b) => a.downtimeRatio - b.downtimeRatio);
  const chosen = timelines[byRatio[Math.floor(byRatio.length / 2)]?.rep ?? 0];
  return {
    config: { ...g, cluster, stateBytesPerCheckpoint: reps[0]?.ours.totalBytes },
    reps,
    restarts,
    writePath: Object.fromEntries(Object.entries(writePath).map(([k, v]) => [k, summarize(v, 1)])),
    profile: {
      checkpoint: { ours: summarizeSegments(oursSegments), direct: summarizeSegments(directSegments), temporal: summarizeProfiles(temporalCheckpoint) },
      restart: { ours: summarizeSegments(oursRestartSegs), direct: summarizeSegments(directRestartSegs), temporal: summarizeProfiles(temporalRestart) },
    },
    timeline: chosen,
  };
}

// ---------------------------------------------------------------------------------------------------
// Section: guest RAM scaling + size on disk (metrics 5, 6)

/** One measurement repeated for our workflows and for the direct script, ms per repetition. */
type PairedMs = { ours: number[]; direct: number[] };

interface RamPoint {
  ramMiB: number;
  fillMiB: number;
  checkpoint: { ours: number[]; direct: number[]; dd: number[] };
  restart: PairedMs;
  restore: PairedMs;
  stateBytes: number[];
  allocatedBytes: number[];
  directAllocatedBytes: number[];
}

/**
 * Restarts the cluster `reps` times from our checkpoint and from the direct script's, alternating which
 * goes first, with every VM killed before each; appends call → last resume and restore-only times.
 */
async function pairedRestarts(
  bed: TestBed,
  procs: DirectProcesses,
  cluster: string,
  oursId: string,
  directDir: string,
  reps: number,
  into: { restart: PairedMs; restore: PairedMs },
): Promise<void> {
  for (const rep of range(reps)) {
    for (const which of rep % 2 === 0 ? ['direct', 'ours'] : ['ours', 'direct']) {
      await bed.killAllVms();
      await procs.killAll();
      if (which === 'ours') {
        const t0 = Date.now();
        const r = await bed.vccr.restart(cluster, { checkpointId: oursId });
        if (!('restoreMs' in r)) throw new Error('restart did not complete');
        into.restart.ours.push(maxOf(r.vms.map((v) => v.resumedAt)) - t0);
        into.restore.ours.push(r.restoreMs);
      } else {
        const d = await directRestart(join(directDir, 'manifest.json'), join(bed.dir, 'dr', cluster, String(rep)), (pid) => procs.add(pid));
        into.restart.direct.push(d.restartMs);
        into.restore.direct.push(d.restoreMs);
      }
    }
  }
}

async function ramSection(bed: TestBed, cfg: Config, procs: DirectProcesses): Promise<RamPoint[]> {
  const points: RamPoint[] = [];
  const ddDir = join(bed.dir, 'dd');
  mkdirSync(ddDir, { recursive: true });
  for (const ramMiB of cfg.ram.sizes) {
    const cluster = `r${ramMiB}`;
    const fillMiB = fillFor(ramMiB);
    const vm = { name: 'm0', host: 'a' };
    say(`ram: ${ramMiB} MiB guest (memfill ${fillMiB} MiB)`);
    await bed.vccr.up(memfillSpec(bed, cluster, [vm], ramMiB, fillMiB));
    const consolePath = bed.consoleLog(vm.host, cluster, vm.name);
    await waitAllConsoles([consolePath], /^MEMFILL READY/m);
    const p: RamPoint = {
      ramMiB,
      fillMiB,
      checkpoint: { ours: [], direct: [], dd: [] },
      restart: { ours: [], direct: [] },
      restore: { ours: [], direct: [] },
      stateBytes: [],
      allocatedBytes: [],
      directAllocatedBytes: [],
    };
    // Warm-up checkpoint: not measured; its size is what dd writes in the first repetition.
    const warm = await oursCheckpoint(bed, cluster);
    await deleteOurs(bed, cluster, warm.result.checkpointId);
    let lastOurs: string | undefined;
    let lastDirect: string | undefined;
    for (const rep of range(cfg.ram.reps)) {
      const order = rep % 2 === 0 ? ['dd', 'ours', 'direct'] : ['direct', 'ours', 'dd'];
      for (const which of order) {
        if (which === 'dd') {
          // The same byte count as this size's checkpoints.
          p.checkpoint.dd.push((await ddWrite(ddDir, p.stateBytes[p.stateBytes.length - 1] ?? warm.result.totalBytes)).ms);
        } else if (which === 'ours') {
          const o = await oursCheckpoint(bed, cluster);
          p.checkpoint.ours.push(o.result.downtimeMs);
          p.stateBytes.push(o.result.totalBytes);
          p.allocatedBytes.push(allocatedBytes(join(bed.store, cluster, o.result.checkpointId)));
          if (lastOurs) await deleteOurs(bed, cluster, lastOurs);
          lastOurs = o.result.checkpointId;
        } else {
          const d = await directCheckpointOf(bed, cluster, ['a'], rep);
          p.checkpoint.direct.push(d.result.downtimeMs);
          p.directAllocatedBytes.push(allocatedBytes(d.dir));
          if (lastDirect) rmSync(lastDirect, { recursive: true, force: true });
          lastDirect = d.dir;
        }
      }
    }
    if (!lastOurs || !lastDirect) throw new Error('no checkpoints');
    await pairedRestarts(bed, procs, cluster, lastOurs, lastDirect, cfg.ram.reps, p);
    await bed.killAllVms();
    await procs.killAll();
    await deleteOurs(bed, cluster, lastOurs);
    rmSync(lastDirect, { recursive: true, force: true });
    await downQuietly(bed, cluster);
    say(
      `ram: ${ramMiB} MiB: state ${(median(p.stateBytes) / MiB).toFixed(0)} MiB, checkpoint ours ${median(p.checkpoint.ours)} / direct ${median(p.checkpoint.direct)} / dd ${median(p.checkpoint.dd).toFixed(0)} ms, ` +
        `restart ours ${median(p.restart.ours)} / direct ${median(p.restart.direct)} ms`,
    );
    points.push(p);
  }
  return points;
}

// ---------------------------------------------------------------------------------------------------
// Section: disk overlays (metric 6)

async function diskSection(bed: TestBed, cfg: Config) {
  const cluster = 'd';
  const image = guestImageDir();
  const base = join(bed.dir, 'journal-base.raw');
  writeFileSync(base, '');
  execFileSync('truncate', ['-s', '64M', base]);
  say(`disk: 1 guest writing a journal (4 KiB records, fdatasync each, every 20 ms) to a virtio disk; ${cfg.disk.checkpoints} checkpoints ${cfg.disk.intervalMs} ms apart`);
  await bed.vccr.up({
    cluster,
    store: bed.store,
    hosts: { a: {} },
    vms: [
      {
        name: 'w0',
        host: 'a',
        memoryMiB: 256,
        boot: {
          kernel: join(image, 'vmlinuz'),
          initrd: join(image, 'initrd.img'),
          append: 'console=ttyS0 quiet panic=-1 vccr.run=journal vccr.args=write,--dev,/dev/vda,--delay-ms,20',
        },
        disks: [{ id: 'data', image: base, format: 'raw' }],
      },
    ],
  });
  const consolePath = bed.consoleLog('a', cluster, 'w0');
  await waitForConsole(consolePath, /^JOURNAL WROTE seq=\d+$/m, { timeoutMs: 120_000 });
  const wrote = () => [...readConsole(consolePath).matchAll(/^JOURNAL WROTE seq=(\d+)$/gm)].length;
  const out: Array<{ checkpointId: string; stateBytes: number; frozenLayer: string; overlayAllocatedBytes: number; overlayFileBytes: number; recordsSincePrevious: number; guestBytesWrittenSincePrevious: number; freezeMs: number; downtimeMs: number }> = [];
  let previousRecords = 0;
  for (const i of range(cfg.disk.checkpoints)) {
    await new Promise((r) => setTimeout(r, cfg.disk.intervalMs));
    const o = await oursCheckpoint(bed, cluster);
    const records = wrote();
    const vm = o.manifest.vms[0];
    const frozen = vm?.disks[0]?.frozen ?? '';
    out.push({
      checkpointId: o.result.checkpointId,
      stateBytes: o.result.totalBytes,
      frozenLayer: frozen,
      overlayAllocatedBytes: allocatedBytes(frozen),
      overlayFileBytes: existsSync(frozen) ? statSync(frozen).size : Number.NaN,
      recordsSincePrevious: records - previousRecords,
      guestBytesWrittenSincePrevious: (records - previousRecords) * 4096,
      freezeMs: (o.result.phases['freeze']?.end ?? 0) - (o.result.phases['freeze']?.start ?? 0),
      downtimeMs: o.result.downtimeMs,
    });
    previousRecords = records;
    say(`disk: checkpoint ${i + 1}: overlay ${(allocatedBytes(frozen) / 1024).toFixed(0)} KiB allocated for ${out[out.length - 1]?.recordsSincePrevious} records written; state ${(o.result.totalBytes / MiB).toFixed(1)} MiB`);
  }
  const errors = readConsole(consolePath).match(/^JOURNAL ERROR.*$/m);
  if (errors) throw new Error(`journal guest reported ${errors[0]}`);
  await downQuietly(bed, cluster);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Section: tiny VMs (metrics 3, 5-count)

interface TinyPoint {
  vms: number;
  hosts: number;
  checkpoint: { ours: number[]; direct: number[]; oursWall: number[] };
  pauseSkew: PairedMs;
  resumeSkew: PairedMs;
  restart?: PairedMs;
  restore?: PairedMs;
  oursSegments: Record<string, Summary>;
  temporal: Record<string, Summary>;
  /** One checkpoint (the median-downtime repetition) of each, for the timeline chart. */
  timeline?: { ours: { result: CheckpointResult; manifest: Manifest }; direct: DirectCheckpointResult };
}

async function tinyPoint(bed: TestBed, n: number, hostCount: number, reps: number, restartReps: number, procs: DirectProcesses): Promise<TinyPoint> {
  const cluster = `t${n}-h${hostCount}`;
  const hostIds = range(hostCount).map((i) => `h${i}`);
  const vms = range(n).map((i) => ({ name: `v${String(i).padStart(3, '0')}`, host: hostIds[i % hostCount] as string, memoryMiB: 16, machine: 'none' as const }));
  const used = [...new Set(vms.map((v) => v.host))];
  await bed.vccr.up({ cluster, store: bed.store, pauseBoundSeconds: 120, hosts: Object.fromEntries(used.map((h) => [h, {}])), vms });
  await oursCheckpoint(bed, cluster); // warm-up
  const p: TinyPoint = {
    vms: n,
    hosts: hostCount,
    checkpoint: { ours: [], direct: [], oursWall: [] },
    pauseSkew: { ours: [], direct: [] },
    resumeSkew: { ours: [], direct: [] },
    oursSegments: {},
    temporal: {},
  };
  const segs: Segments[] = [];
  const profiles: Array<Record<string, number>> = [];
  const kept: Array<{ result: CheckpointResult; manifest: Manifest }> = [];
  const keptDirect: DirectCheckpointResult[] = [];
  let lastOurs = '';
  let lastDirect = '';
  for (const rep of range(reps)) {
    for (const which of rep % 2 === 0 ? ['ours', 'direct'] : ['direct', 'ours']) {
      if (which === 'ours') {
        const o = await oursCheckpoint(bed, cluster);
        p.checkpoint.ours.push(o.result.downtimeMs);
        p.checkpoint.oursWall.push(o.wallMs);
        p.pauseSkew.ours.push(o.result.pauseSkewMs);
        p.resumeSkew.ours.push(o.result.resumeSkewMs);
        segs.push(oursCheckpointSegments(o.result, o.manifest));
        const p0 = minOf(o.result.vms.map((v) => v.pausedAt));
        profiles.push(await temporalProfile(bed, o.manifest.workflowId, p0, maxOf(o.result.vms.map((v) => v.resumedAt ?? p0))));
        kept.push(o);
        lastOurs = o.result.checkpointId;
      } else {
        const d = await directCheckpointOf(bed, cluster, used, rep);
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
  if (n === 16) {
    const order = range(kept.length).sort((a, b) => (kept[a]?.result.downtimeMs ?? 0) - (kept[b]?.result.downtimeMs ?? 0));
    const mid = order[Math.floor(order.length / 2)] ?? 0;
    const ours = kept[mid];
    const direct = keptDirect[mid];
    if (ours && direct) p.timeline = { ours, direct };
  }
  if (restartReps > 0) {
    p.restart = { ours: [], direct: [] };
    p.restore = { ours: [], direct: [] };
    await pairedRestarts(bed, procs, cluster, lastOurs, lastDirect, restartReps, { restart: p.restart, restore: p.restore });
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

async function tinySection(bed: TestBed, cfg: Config, procs: DirectProcesses): Promise<TinyPoint[]> {
  const t = cfg.tiny;
  const points: TinyPoint[] = [];
  const many = [...new Set([...t.counts, ...t.skewCounts])].sort((a, b) => a - b);
  for (const n of many) points.push(await tinyPoint(bed, n, t.hosts, t.reps, t.counts.includes(n) ? t.restartReps : 0, procs));
  for (const n of t.fewHostCounts) points.push(await tinyPoint(bed, n, t.fewHosts, t.reps, 0, procs));
  return points;
}

// ---------------------------------------------------------------------------------------------------
// Machine facts

async function machineInfo(store: string) {
  const cpus = os.cpus();
  const qemu = (await run('qemu-system-x86_64', ['--version'])).stdout.split('\n')[0] ?? '';
  let temporal = '';
  try {
    temporal = (await run(join(REPO, '.cache', 'temporal', 'temporal'), ['--version'])).stdout.trim();
  } catch {
    temporal = 'unknown';
  }
  let fs = '';
  try {
    fs = execFileSync('df', ['--output=source,fstype', store], { encoding: 'utf8' }).trim().split('\n').pop()?.trim() ?? '';
  } catch {
    fs = 'unknown';
  }
  // How fast this CPU hashes (the save path hashes inline, on the host worker's event loop).
  const buf = Buffer.allocUnsafe(64 * MiB);
  randomFillSync(buf);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 4; i++) createHash('sha256').update(buf).digest();
  const sha256MiBps = (4 * 64) / (Number(process.hrtime.bigint() - t0) / 1e9);
  return {
    hostname: os.hostname(),
    cpuModel: cpus[0]?.model ?? 'unknown',
    cpus: cpus.length,
    memoryGiB: +(os.totalmem() / 1024 ** 3).toFixed(1),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    qemu,
    accel: 'tcg',
    temporalCli: temporal,
    storeFilesystem: fs,
    sha256MiBPerSecOneCore: +sha256MiBps.toFixed(0),
    loadAverageAtStart: os.loadavg().map((x) => +x.toFixed(2)),
  };
}

// ---------------------------------------------------------------------------------------------------
// Charts

function pointOf(x: number, values: number[], scale = 1): { x: number; y: number; lo: number; hi: number } {
  const s = summarize(values.map((v) => v * scale));
  return { x, y: s.median, lo: s.min, hi: s.max };
}

function checkpointTimeline(title: string, tl: { ours: { result: CheckpointResult; manifest: Manifest }; direct: DirectCheckpointResult }): string {
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

function writeCharts(results: BenchResults): string[] {
  const written: string[] = [];
  const save = (name: string, svg: string) => {
    writeFileSync(join(RESULTS, name), svg);
    written.push(`bench/results/${name}`);
  };

  const tiny = results.tiny?.points ?? [];
  const byCount = tiny.filter((p) => p.hosts === (results.config.tiny.hosts) && p.restart);
  if (byCount.length) {
    const panels: Panel[] = [
      {
        title: 'Checkpoint downtime vs VM count',
        xLabel: `tiny VMs (machine none, ${results.config.tiny.hosts} host workers)`,
        yLabel: 'ms (median, min–max)',
        xLog2: true,
        series: [
          { name: 'workflows', points: byCount.map((p) => pointOf(p.vms, p.checkpoint.ours)) },
          { name: 'direct QMP script', dash: true, points: byCount.map((p) => pointOf(p.vms, p.checkpoint.direct)) },
        ],
      },
      {
        title: 'Restart time vs VM count',
        xLabel: `tiny VMs (machine none, ${results.config.tiny.hosts} host workers)`,
        yLabel: 'ms, call → last VM resumed',
        xLog2: true,
        series: [
          { name: 'workflows', points: byCount.map((p) => pointOf(p.vms, p.restart?.ours ?? [])) },
          { name: 'direct QMP script', dash: true, points: byCount.map((p) => pointOf(p.vms, p.restart?.direct ?? [])) },
        ],
      },
    ];
    save('scaling-count.svg', figure('Scaling with VM count (state ≈ 750 B per VM)', panels, { note: 'Same VMs, same run; whiskers: min–max over repetitions.' }));
  }

  const ram = results.ram ?? [];
  if (ram.length) {
    const panels: Panel[] = [
      {
        title: 'Checkpoint downtime vs guest RAM',
        xLabel: 'guest RAM (MiB), one VM, mostly filled by memfill',
        yLabel: 'ms (median, min–max)',
        series: [
          { name: 'workflows', points: ram.map((p) => pointOf(p.ramMiB, p.checkpoint.ours)) },
          { name: 'direct QMP script', dash: true, points: ram.map((p) => pointOf(p.ramMiB, p.checkpoint.direct)) },
          { name: 'dd conv=fdatasync, same bytes', color: '#7f7f7f', points: ram.map((p) => pointOf(p.ramMiB, p.checkpoint.dd)) },
        ],
      },
      {
        title: 'Restart time vs guest RAM',
        xLabel: 'guest RAM (MiB)',
        yLabel: 'ms, call → VM resumed',
        series: [
          { name: 'workflows', points: ram.map((p) => pointOf(p.ramMiB, p.restart.ours)) },
          { name: 'direct QMP script', dash: true, points: ram.map((p) => pointOf(p.ramMiB, p.restart.direct)) },
        ],
      },
    ];
    save('scaling-ram.svg', figure('Scaling with guest RAM', panels));

    const disk = results.disk ?? [];
    const sizePanels: Panel[] = [
      {
        title: 'Checkpoint size vs guest RAM',
        xLabel: 'guest RAM (MiB)',
        yLabel: 'MiB',
        series: [
          { name: 'guest RAM', color: '#bbbbbb', points: ram.map((p) => ({ x: p.ramMiB, y: p.ramMiB })) },
          { name: 'filled by memfill', color: '#7f7f7f', dash: true, points: ram.map((p) => ({ x: p.ramMiB, y: p.fillMiB })) },
          { name: 'state file (bytes)', points: ram.map((p) => pointOf(p.ramMiB, p.stateBytes, 1 / MiB)) },
          { name: 'checkpoint folder on disk (du)', dash: true, color: '#ff7f0e', points: ram.map((p) => pointOf(p.ramMiB, p.allocatedBytes, 1 / MiB)) },
        ],
      },
    ];
    if (disk.length) {
      sizePanels.push({
        title: 'Disk overlay per checkpoint (journal guest)',
        xLabel: 'checkpoint number',
        yLabel: 'KiB',
        series: [
          { name: 'frozen overlay on disk (du)', points: disk.map((d, i) => ({ x: i + 1, y: d.overlayAllocatedBytes / 1024 })) },
          { name: 'data the guest wrote (4 KiB records)', dash: true, points: disk.map((d, i) => ({ x: i + 1, y: d.guestBytesWrittenSincePrevious / 1024 })) },
        ],
      });
    }
    save('size-on-disk.svg', figure('Size on disk per checkpoint', sizePanels));
  }

  if (tiny.length) {
    const hostsSet = [...new Set(tiny.map((p) => p.hosts))].sort((a, b) => a - b);
    const skewCounts = results.config.tiny.skewCounts;
    const series = (key: 'pauseSkew' | 'resumeSkew'): Series[] =>
      hostsSet.map((h, i) => ({
        name: `${h} host workers`,
        dash: i > 0,
        points: tiny.filter((p) => p.hosts === h && skewCounts.includes(p.vms)).map((p) => pointOf(p.vms, p[key].ours)),
      }));
    save(
      'skew.svg',
      figure('Barrier skew (first → last VM), workflows', [
        { title: 'Pause skew', xLabel: 'VMs (machine none)', yLabel: 'ms (median, min–max)', xLog2: true, series: series('pauseSkew'), hline: { y: 20, label: 'goal at 16 VMs: 20 ms' } },
        { title: 'Resume skew', xLabel: 'VMs (machine none)', yLabel: 'ms (median, min–max)', xLog2: true, series: series('resumeSkew'), hline: { y: 20, label: 'goal at 16 VMs: 20 ms' } },
      ]),
    );
  }

  const tl = results.guest?.timeline;
  if (tl) {
    save(
      'timeline.svg',
      checkpointTimeline(
        `One checkpoint of ${results.config.guest.vms} guests, per VM: workflows vs direct QMP script (same VMs, same run)`,
        tl,
      ),
    );
  }
  const tiny16 = tiny.find((p) => p.vms === 16 && p.hosts === results.config.tiny.hosts)?.timeline;
  if (tiny16) {
    save('timeline-tiny-16.svg', checkpointTimeline(`One checkpoint of 16 tiny VMs on ${results.config.tiny.hosts} host workers: workflows vs direct QMP script`, tiny16));
  }

  const wp = results.guest?.writePath;
  if (wp) {
    const label: Record<string, string> = {
      discard: 'QEMU → socket → discard',
      'no-hash': '+ write to file, fsync at end',
      product: '+ sha256 (product StateReceiver)',
      'flush-as-you-go': 'StateReceiver-like, fdatasync every 64 MiB',
    };
    const rows = Object.entries(wp).map(([k, v]) => ({
      label: label[k] ?? k,
      value: v.median,
      lo: v.min,
      hi: v.max,
      color: k.startsWith('dd') ? '#7f7f7f' : k === 'product' ? '#d62728' : '#1f77b4',
    }));
    save(
      'write-path.svg',
      bars(
        `Save write path, ${results.config.guest.vms} guests saved at once (${fmt((results.guest?.config.stateBytesPerCheckpoint ?? 0) / MiB, 0)} MiB)`,
        rows,
        'MiB/s (median, min–max)',
        'Same paused VMs, sinks rotated per round; dd writes /dev/zero with conv=fdatasync into the store\'s filesystem.',
      ),
    );
  }
  return written;
}

// ---------------------------------------------------------------------------------------------------
// Results and the table

interface Metric extends Summary {
  unit: string;
  goal?: { op: '<=' | '>='; value: number };
  met?: boolean;
  what: string;
}

function metric(values: number[], unit: string, what: string, goal?: { op: '<=' | '>='; value: number }): Metric {
  const s = summarize(values);
  const m: Metric = { ...s, unit, what };
  if (goal) {
    m.goal = goal;
    m.met = goal.op === '<=' ? s.median <= goal.value : s.median >= goal.value;
  }
  return m;
}

interface BenchResults {
  schema: 'vccr-bench/1';
  mode: string;
  startedAt: string;
  finishedAt?: string;
  durationSec?: number;
  machine: Awaited<ReturnType<typeof machineInfo>> & { loadAverageAtEnd?: number[] };
  qemu_version: string;
  config: Config;
  downtime_ratio?: Metric;
  save_throughput_ratio?: Metric;
  pause_skew_ms_16?: Metric;
  resume_skew_ms_16?: Metric;
  restart_ratio?: Metric;
  recovery_ms?: Metric;
  protected_overhead_pct?: Metric;
  chain_length_after_30?: Metric;
  metrics: Record<string, Metric>;
  protect?: ProtectBenchResult;
  guest?: Awaited<ReturnType<typeof guestSection>>;
  ram?: RamPoint[];
  disk?: Awaited<ReturnType<typeof diskSection>>;
  tiny?: { points: TinyPoint[]; fits: Record<string, unknown> };
  scaling?: Record<string, unknown>;
  charts?: string[];
  errors: string[];
}

function printTable(results: BenchResults): void {
  const rows: string[][] = [['metric', 'median', 'spread (min–max; IQR)', 'n', 'goal', 'met?']];
  const add = (name: string, m: Metric | undefined) => {
    if (!m) return;
    rows.push([
      name,
      `${fmt(m.median)} ${m.unit}`.trim(),
      `${fmt(m.min)}–${fmt(m.max)}; ${fmt(m.p25)}–${fmt(m.p75)}`,
      String(m.n),
      m.goal ? `${m.goal.op} ${m.goal.value}` : '',
      m.goal ? (m.met ? 'yes' : 'NO') : '',
    ]);
  };
  add('downtime_ratio (ours/direct)', results.downtime_ratio);
  add('save_throughput_ratio (ours/dd)', results.save_throughput_ratio);
  add('pause_skew_ms_16 (16 VMs, 16 hosts)', results.pause_skew_ms_16);
  add('resume_skew_ms_16 (16 VMs, 16 hosts)', results.resume_skew_ms_16);
  add('restart_ratio (ours/direct)', results.restart_ratio);
  add('recovery_ms (host dies → all VMs back)', results.recovery_ms);
  add('protected_overhead_pct (every 30 s, stop)', results.protected_overhead_pct);
  add('chain_length_after_30 (keep-last 3)', results.chain_length_after_30);
  rows.push(['', '', '', '', '', '']);
  for (const [name, m] of Object.entries(results.metrics)) add(name, m);
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length))) ?? [];
  const line = (r: string[]) => r.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join('  ');
  process.stdout.write(`\nVCCR benchmark (${results.mode}) — ${results.machine.cpus}× ${results.machine.cpuModel}, ${results.qemu_version}\n\n`);
  process.stdout.write(`${line(rows[0] ?? [])}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n`);
  for (const r of rows.slice(1)) process.stdout.write(`${line(r)}\n`);
  const profile = results.guest?.profile;
  if (profile) {
    for (const kind of ['checkpoint', 'restart'] as const) {
      process.stdout.write(`\nWhere the time goes: ${kind} of ${results.config.guest.vms} guests (median ms)\n`);
      const o = profile[kind].ours;
      const d = profile[kind].direct;
      const w = Math.max(...Object.keys(o).map((k) => k.length));
      process.stdout.write(`  ${'segment'.padEnd(w)}  ${'workflows'.padStart(9)}  ${'direct'.padStart(8)}  ${'extra'.padStart(8)}\n`);
      for (const k of Object.keys(o)) {
        const om = o[k]?.median ?? Number.NaN;
        const dm = d[k]?.median ?? Number.NaN;
        process.stdout.write(`  ${k.padEnd(w)}  ${fmt(om, 0).padStart(9)}  ${fmt(dm, 0).padStart(8)}  ${fmt(om - dm, 0).padStart(8)}\n`);
      }
    }
  }
  const attribution = (title: string, t: Record<string, Summary> | undefined) => {
    if (!t || !Object.keys(t).length) return;
    process.stdout.write(`\n${title} (median ms; each ms goes to what the workflow was waiting for)\n`);
    const w = Math.max(...Object.keys(t).map((k) => k.length));
    for (const [k, v] of Object.entries(t).sort((a, b) => b[1].median - a[1].median)) {
      process.stdout.write(`  ${k.padEnd(w)}  ${fmt(v.median, 0).padStart(7)}   (${fmt(v.min, 0)}–${fmt(v.max, 0)})\n`);
    }
  };
  attribution(`Temporal view of the checkpoint downtime, ${results.config.guest.vms} guests`, profile?.checkpoint.temporal);
  attribution(`Temporal view of the restart (call → last resume), ${results.config.guest.vms} guests`, profile?.restart.temporal);
  attribution(`Temporal view of the checkpoint downtime, 16 tiny VMs on ${results.config.tiny.hosts} hosts`, results.tiny?.points.find((p) => p.vms === 16 && p.hosts === results.config.tiny.hosts)?.temporal);
  const wp = results.guest?.writePath;
  if (wp) {
    process.stdout.write(`\nSave write path, ${results.config.guest.vms} guests at once (median MiB/s, min–max)\n`);
    for (const [k, v] of Object.entries(wp)) process.stdout.write(`  ${k.padEnd(18)} ${fmt(v.median, 0).padStart(6)}   (${fmt(v.min, 0)}–${fmt(v.max, 0)})\n`);
  }
  if (results.errors.length) process.stdout.write(`\nERRORS:\n  ${results.errors.join('\n  ')}\n`);
  process.stdout.write('\n');
}

function deriveMetrics(results: BenchResults): void {
  const g = results.guest;
  const m = results.metrics;
  if (g) {
    results.downtime_ratio = metric(g.reps.map((r) => r.downtimeRatio), '', 'checkpoint downtime (first pause → last resume), workflows / direct QMP script, paired per repetition', GOALS.downtime_ratio);
    results.save_throughput_ratio = metric(
      g.reps.map((r) => r.saveThroughputRatio),
      '',
      'state bytes made durable per second during the save phase (workflow clock), / dd if=/dev/zero bs=1M conv=fdatasync of the same byte count on the same filesystem',
      GOALS.save_throughput_ratio,
    );
    results.restart_ratio = metric(g.restarts.map((r) => r.restartRatio), '', 'restart (call → last VM resumed, checksums verified first by both), workflows / direct QMP script', GOALS.restart_ratio);
    m['downtime ours (ms)'] = metric(g.reps.map((r) => r.ours.downtimeMs), 'ms', 'workflows');
    m['downtime direct (ms)'] = metric(g.reps.map((r) => r.direct.downtimeMs), 'ms', 'direct QMP script');
    m['downtime overhead (ms)'] = metric(g.reps.map((r) => r.ours.downtimeMs - r.direct.downtimeMs), 'ms', 'paired difference');
    // From the raw fields, so that results saved by earlier versions re-render (--report).
    const oursNonIo = g.reps.map((r) => r.ours.downtimeMs - r.ours.saveHostMs);
    const directNonIo = g.reps.map((r) => r.direct.downtimeMs - r.direct.saveHostMs);
    m['non-I/O downtime ours (ms)'] = metric(oursNonIo, 'ms', 'downtime minus first save start → last file durable');
    m['non-I/O downtime direct (ms)'] = metric(directNonIo, 'ms', 'the same for the direct script');
    m['downtime ratio, I/O noise removed'] = metric(
      g.reps.map((r, i) => (r.direct.downtimeMs + (oursNonIo[i] ?? 0) - (directNonIo[i] ?? 0)) / r.direct.downtimeMs),
      '',
      "(direct downtime + our non-I/O downtime − direct's non-I/O downtime) / direct downtime: the orchestration's share, without the two save I/O phases' run-to-run noise",
    );
    if (g.reps.every((r) => r.loadAverage !== undefined)) {
      m['load average during guest reps'] = metric(g.reps.map((r) => r.loadAverage), '', '1-minute load average after each repetition (2 cores)');
    }
    m['save ratio, host clock (ours/dd)'] = metric(g.reps.map((r) => r.saveThroughputRatioHostClock), '', 'first save start → last file durable, as the hosts measured it');
    m['save ratio direct (direct/dd)'] = metric(g.reps.map((r) => r.directSaveThroughputRatio), '', 'the write path without orchestration');
    m['dd throughput (MiB/s)'] = metric(g.reps.map((r) => r.dd.bytesPerSec / MiB), 'MiB/s', 'dd conv=fdatasync');
    m[`save ratio vs ${g.config.vms} parallel dd`] = metric(
      g.reps.map((r) => r.ours.totalBytes / (r.ours.savePhaseMs / 1000) / r.ddParallel.bytesPerSec),
      '',
      'same parallelism as the VMs: one dd per VM, sharing the bytes',
    );
    m['save throughput ours (MiB/s)'] = metric(g.reps.map((r) => r.ours.totalBytes / MiB / (r.ours.savePhaseMs / 1000)), 'MiB/s', 'save phase');
    m['restore-only ratio (ours/direct)'] = metric(g.restarts.map((r) => r.restoreRatio), '', 'launch start → last resume (no checksum pass, no lock)');
    m['restart ours (ms)'] = metric(g.restarts.map((r) => r.ours.restartMs), 'ms', 'workflows');
    m['restart direct (ms)'] = metric(g.restarts.map((r) => r.direct.restartMs), 'ms', 'direct');
    m['guest pause skew ours (ms)'] = metric(g.reps.map((r) => r.ours.pauseSkewMs), 'ms', '4 guests on 2 hosts');
    m['guest resume skew ours (ms)'] = metric(g.reps.map((r) => r.ours.resumeSkewMs), 'ms', '4 guests on 2 hosts');
  }
  const tiny = results.tiny?.points ?? [];
  const at = (vms: number, hosts: number) => tiny.find((p) => p.vms === vms && p.hosts === hosts);
  const big = results.config.tiny.hosts;
  const few = results.config.tiny.fewHosts;
  const p16 = at(16, big);
  if (p16) {
    results.pause_skew_ms_16 = metric(p16.pauseSkew.ours, 'ms', `16 tiny VMs on ${big} host workers`, GOALS.pause_skew_ms_16);
    results.resume_skew_ms_16 = metric(p16.resumeSkew.ours, 'ms', `16 tiny VMs on ${big} host workers`, GOALS.resume_skew_ms_16);
  }
  for (const n of results.config.tiny.skewCounts) {
    for (const h of [few, big]) {
      const p = at(n, h);
      if (!p) continue;
      const goal = n === 16 ? GOALS.pause_skew_ms_16 : undefined;
      m[`pause skew ${n} VMs/${h} hosts (ms)`] = metric(p.pauseSkew.ours, 'ms', 'workflows', goal);
      m[`resume skew ${n} VMs/${h} hosts (ms)`] = metric(p.resumeSkew.ours, 'ms', 'workflows', goal);
      if (h === big) {
        m[`pause skew ${n} VMs, direct script (ms)`] = metric(p.pauseSkew.direct, 'ms', 'one process, stop on every VM in parallel');
        m[`resume skew ${n} VMs, direct script (ms)`] = metric(p.resumeSkew.direct, 'ms', 'one process, cont on every VM in parallel');
      }
    }
  }
  const counts = tiny.filter((p) => p.hosts === big && p.restart);
  if (counts.length > 1) {
    const xs = counts.flatMap((p) => p.checkpoint.ours.map(() => p.vms));
    const fitC = linearFit(xs, counts.flatMap((p) => p.checkpoint.ours));
    const fitCd = linearFit(xs, counts.flatMap((p) => p.checkpoint.direct));
    const xr = counts.flatMap((p) => (p.restart?.ours ?? []).map(() => p.vms));
    const fitR = linearFit(xr, counts.flatMap((p) => p.restart?.ours ?? []));
    const fitRd = linearFit(xr, counts.flatMap((p) => p.restart?.direct ?? []));
    const last = counts[counts.length - 1] as TinyPoint;
    results.tiny = {
      points: tiny,
      fits: {
        checkpointMsPerVm: { ours: fitC, direct: fitCd },
        restartMsPerVm: { ours: fitR, direct: fitRd },
      },
    };
    m['checkpoint cost per tiny VM, ours (ms/VM)'] = { ...metric([fitC.slope], 'ms/VM', 'least-squares slope of downtime vs VM count'), n: xs.length };
    m['checkpoint cost per tiny VM, direct (ms/VM)'] = { ...metric([fitCd.slope], 'ms/VM', 'least-squares slope'), n: xs.length };
    m['restart cost per tiny VM, ours (ms/VM)'] = { ...metric([fitR.slope], 'ms/VM', 'least-squares slope'), n: xr.length };
    m['restart cost per tiny VM, direct (ms/VM)'] = { ...metric([fitRd.slope], 'ms/VM', 'least-squares slope'), n: xr.length };
    m[`downtime ratio at ${last.vms} tiny VMs`] = metric(last.checkpoint.ours.map((v, i) => v / (last.checkpoint.direct[i] ?? Number.NaN)), '', 'workflows / direct');
  }
  const ram = results.ram ?? [];
  if (ram.length > 1) {
    const xs = ram.flatMap((p) => p.stateBytes.map((b) => b / 1024 ** 3));
    const fit = (pick: (p: RamPoint) => number[]) =>
      linearFit(
        ram.flatMap((p) => pick(p).map((_, i) => (p.stateBytes[i] ?? p.stateBytes[0] ?? 0) / 1024 ** 3)),
        ram.flatMap((p) => pick(p)),
      );
    const fits = {
      checkpointMsPerGiB: { ours: fit((p) => p.checkpoint.ours), direct: fit((p) => p.checkpoint.direct), dd: fit((p) => p.checkpoint.dd) },
      restartMsPerGiB: { ours: fit((p) => p.restart.ours), direct: fit((p) => p.restart.direct) },
    };
    results.scaling = { ram: fits, stateGiB: xs };
    m['checkpoint cost per GiB of state, ours (ms/GiB)'] = { ...metric([fits.checkpointMsPerGiB.ours.slope], 'ms/GiB', 'slope of downtime vs state size'), n: xs.length };
    m['checkpoint cost per GiB of state, direct (ms/GiB)'] = { ...metric([fits.checkpointMsPerGiB.direct.slope], 'ms/GiB', 'slope'), n: xs.length };
    m['dd cost per GiB (ms/GiB)'] = { ...metric([fits.checkpointMsPerGiB.dd.slope], 'ms/GiB', 'slope'), n: xs.length };
    m['restart cost per GiB of state, ours (ms/GiB)'] = { ...metric([fits.restartMsPerGiB.ours.slope], 'ms/GiB', 'slope'), n: xs.length };
    m['restart cost per GiB of state, direct (ms/GiB)'] = { ...metric([fits.restartMsPerGiB.direct.slope], 'ms/GiB', 'slope'), n: xs.length };
    for (const p of ram) {
      m[`state / guest RAM at ${p.ramMiB} MiB`] = metric(p.stateBytes.map((b) => b / (p.ramMiB * MiB)), '', `memfill ${p.fillMiB} MiB`);
      m[`on-disk / state at ${p.ramMiB} MiB`] = metric(p.allocatedBytes.map((a, i) => a / (p.stateBytes[i] ?? Number.NaN)), '', 'du of the checkpoint folder / state bytes');
    }
  }
  deriveProtectMetrics(results);
  const disk = results.disk ?? [];
  if (disk.length) {
    const later = disk.slice(1);
    m['disk overlay per checkpoint (KiB)'] = metric(later.map((d) => d.overlayAllocatedBytes / 1024), 'KiB', `frozen qcow2 layer (du), after the first; guest writes ~${fmt(median(later.map((d) => d.guestBytesWrittenSincePrevious / 1024)), 0)} KiB between checkpoints`);
    m['disk overlay / guest data written'] = metric(later.map((d) => d.overlayAllocatedBytes / d.guestBytesWrittenSincePrevious), '', 'overhead of the qcow2 layer');
    m['freeze phase with 1 disk (ms)'] = metric(disk.map((d) => d.freezeMs), 'ms', 'blockdev-snapshot-sync while paused');
  }
}

function deriveProtectMetrics(results: BenchResults): void {
  const p = results.protect;
  if (!p) return;
  const m = results.metrics;
  const watch = `watch: check every ${p.watch.checkEverySeconds} s, grace ${p.watch.graceSeconds} s, pickup ${p.watch.pickupSeconds} s`;
  results.recovery_ms = metric(p.recovery.map((r) => r.recoveryMs), 'ms', `host worker and its QEMUs SIGKILLed → every VM running again from its checkpoint, the dead host's VMs on a spare (3 ring VMs + a disk VM on 2 hosts + spare; ${watch})`);
  m['recovery: detection (ms)'] = metric(p.recovery.map((r) => r.detectMs), 'ms', 'kill → the watch starts the recovery (polling, pickup timeout, grace, confirmation)');
  m['recovery: restart (ms)'] = metric(p.recovery.map((r) => r.restartMs), 'ms', 'restart workflow: launch → last VM resumed');
  const pct = (rates: number[]) => rates.map((r, i) => (1 - r / (p.overhead.unprotected[i] ?? Number.NaN)) * 100);
  results.protected_overhead_pct = metric(pct(p.overhead.stop), '%', `ring throughput lost with a stop-and-save checkpoint every ${p.config.everySec} s, per pair of ${p.config.windowSec}-s windows`);
  if (Array.isArray(p.overhead.live)) m['protected overhead, live (%)'] = metric(pct(p.overhead.live), '%', 'live checkpoints');
  m['ring throughput unprotected (tokens/s)'] = metric(p.overhead.unprotected, 'tokens/s', '3-node ring, no delay');
  results.chain_length_after_30 = metric([p.chain.longestRunningChain], 'layers', `longest disk chain under a running VM after ${p.chain.checkpoints} scheduled checkpoints, keep-last 3 (top and base included)`, { op: '<=', value: 5 });
  m['store / kept state bytes after 30'] = metric([p.chain.storeBytes / p.chain.keptStateBytes], '', `du of the cluster's store / state bytes of the ${p.chain.keptCheckpoints} kept checkpoints`);
}

// ---------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      reps: { type: 'string' },
      /** Re-renders the table, metrics and charts of a saved results file (and makes it latest.json). */
      report: { type: 'string' },
    },
    strict: true,
  });
  if (values.report) {
    const saved = JSON.parse(readFileSync(values.report, 'utf8')) as BenchResults;
    saved.metrics = {};
    deriveMetrics(saved);
    mkdirSync(RESULTS, { recursive: true });
    saved.charts = writeCharts(saved);
    writeFileSync(join(RESULTS, 'latest.json'), JSON.stringify(saved, null, 1));
    printTable(saved);
    process.stdout.write(`re-rendered ${values.report} → bench/results/latest.json; charts: ${saved.charts.join(', ')}\nrun time of that run: ${saved.durationSec} s\n`);
    return;
  }
  const cfg: Config = structuredClone(values.quick ? QUICK : FULL);
  if (values.reps) {
    const n = Number(values.reps);
    if (!Number.isInteger(n) || n < 1) throw new Error('--reps must be a positive integer');
    cfg.reps = n;
    cfg.ram.reps = Math.min(cfg.ram.reps, n);
    cfg.tiny.reps = n;
    cfg.tiny.restartReps = Math.min(cfg.tiny.restartReps, n);
  }
  const sections = new Set((values.only ?? 'guest,ram,disk,tiny,protect').split(',').map((s) => s.trim()));
  for (const s of sections) if (!['guest', 'ram', 'disk', 'tiny', 'protect'].includes(s)) throw new Error(`--only: unknown section ${s}`);
  mkdirSync(RESULTS, { recursive: true });

  const procs = new DirectProcesses();
  const startedAt = new Date();
  let results: BenchResults | undefined;
  const errors: string[] = [];
  let bed: TestBed | undefined;
  const stopBed = async () => {
    await procs.killAll();
    if (bed) await bed.stop().catch((err: unknown) => say(`(bed stop: ${(err as Error).message})`));
    bed = undefined;
  };
  const onSignal = () => {
    say('interrupted: cleaning up');
    void stopBed().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    say(`mode ${cfg.mode}, sections ${[...sections].join(', ')}, ${cfg.reps} repetitions`);
    const info = await machineInfo(REPO);
    results = { schema: 'vccr-bench/1', mode: cfg.mode, startedAt: startedAt.toISOString(), machine: info, qemu_version: info.qemu, config: cfg, metrics: {}, errors };

    if (sections.has('guest') || sections.has('ram') || sections.has('disk')) {
      say('starting test bed: Temporal dev server, controller, host workers a, b');
      bed = await TestBed.start({ hosts: cfg.guest.hosts });
      results.machine.storeFilesystem = execFileSync('df', ['--output=source,fstype', bed.store.replace(/\/store$/, '')], { encoding: 'utf8' }).trim().split('\n').pop()?.trim() ?? '';
      const attempt = async <T>(name: string, f: () => Promise<T>): Promise<T | undefined> => {
        try {
          return await f();
        } catch (err) {
          const msg = `${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
          errors.push(msg.split('\n').slice(0, 4).join(' | '));
          say(`FAILED ${msg}`);
          await procs.killAll();
          if (bed) await bed.killAllVms();
          return undefined;
        }
      };
      const b = bed;
      if (sections.has('guest')) results.guest = await attempt('guest', () => guestSection(b, cfg, procs));
      if (sections.has('ram')) results.ram = await attempt('ram', () => ramSection(b, cfg, procs));
      if (sections.has('disk')) results.disk = await attempt('disk', () => diskSection(b, cfg));
      await stopBed();
    }
    if (sections.has('tiny')) {
      const hosts = range(cfg.tiny.hosts).map((i) => `h${i}`);
      say(`starting test bed with ${hosts.length} host workers`);
      bed = await TestBed.start({ hosts });
      const b = bed;
      try {
        results.tiny = { points: await tinySection(b, cfg, procs), fits: {} };
      } catch (err) {
        errors.push(`tiny: ${err instanceof Error ? err.message : String(err)}`);
        say(`FAILED tiny: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      }
      await stopBed();
    }
    if (sections.has('protect')) {
      try {
        results.protect = await protectSection(cfg.mode === 'quick' ? PROTECT_QUICK : PROTECT_FULL, say);
      } catch (err) {
        errors.push(`protect: ${err instanceof Error ? err.message : String(err)}`);
        say(`FAILED protect: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      }
    }
  } finally {
    await stopBed();
  }
  if (!results) return;

  deriveMetrics(results);
  results.finishedAt = new Date().toISOString();
  results.durationSec = Math.round((Date.now() - BENCH_START) / 1000);
  results.machine.loadAverageAtEnd = os.loadavg().map((x) => +x.toFixed(2));
  results.charts = writeCharts(results);
  const json = JSON.stringify(results, null, 1);
  const latest = join(RESULTS, 'latest.json');
  writeFileSync(latest, json);
  const stamped = join(RESULTS, `${startedAt.toISOString().replace(/[:.]/g, '-')}-${cfg.mode}.json`);
  copyFileSync(latest, stamped);
  printTable(results);
  process.stdout.write(`results: bench/results/latest.json (copy: ${stamped.slice(REPO.length + 1)})\ncharts: ${results.charts.join(', ')}\nrun time: ${results.durationSec} s\n`);
  if (errors.length) process.exitCode = 1;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
