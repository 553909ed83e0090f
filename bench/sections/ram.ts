// Section `ram`: one real guest of 128 MiB … 2 GiB: checkpoint and restart time against guest RAM (with
// the direct script and dd for the same bytes), and the state's size on disk.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { linearFit, median } from '../../common/stats';
import { allocatedBytes, ddWrite, deleteOurs, directCheckpointOf, downQuietly, memfillSpec, oursCheckpoint, pairedRestarts, waitAllConsoles, type PairedMs } from '../bed-ops';
import { pointOf } from '../charts';
import { metric, type BenchResults, type MetricSink } from '../results';
import { defineSection, type Chart, type RunContext } from '../section';
import { figure, type Panel } from '../svg';
import { MiB, range, say } from '../util';
import type { DiskCheckpoint } from './disk';

interface RamConfig {
  sizes: number[];
  reps: number;
}

export interface RamPoint {
  ramMiB: number;
  fillMiB: number;
  checkpoint: { ours: number[]; direct: number[]; dd: number[] };
  restart: PairedMs;
  restore: PairedMs;
  stateBytes: number[];
  allocatedBytes: number[];
  directAllocatedBytes: number[];
}

/** How much of a guest's RAM memfill fills (the kernel and initramfs need ~90 MiB of a small guest). */
const fillFor = (ramMiB: number) => (ramMiB <= 256 ? ramMiB - 96 : Math.floor((ramMiB * 3) / 4));

async function ramPoint(ctx: RunContext, ramMiB: number, reps: number): Promise<RamPoint> {
  const { bed, procs } = ctx;
  const ddDir = join(bed.dir, 'dd');
  mkdirSync(ddDir, { recursive: true });
  const cluster = `r${ramMiB}`;
  const fillMiB = fillFor(ramMiB);
  const vm = { name: 'm0', host: 'a' };
  say(`ram: ${ramMiB} MiB guest (memfill ${fillMiB} MiB)`);
  await bed.vccr.up(memfillSpec(bed, cluster, [vm], ramMiB, fillMiB));
  await waitAllConsoles([bed.consoleLog(vm.host, cluster, vm.name)], /^MEMFILL READY/m);
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
  for (const rep of range(reps)) {
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
  await pairedRestarts(bed, procs, cluster, lastOurs, lastDirect, reps, p);
  await bed.killAllVms();
  await procs.killAll();
  await deleteOurs(bed, cluster, lastOurs);
  rmSync(lastDirect, { recursive: true, force: true });
  await downQuietly(bed, cluster);
  say(
    `ram: ${ramMiB} MiB: state ${(median(p.stateBytes) / MiB).toFixed(0)} MiB, checkpoint ours ${median(p.checkpoint.ours)} / direct ${median(p.checkpoint.direct)} / dd ${median(p.checkpoint.dd).toFixed(0)} ms, ` +
      `restart ours ${median(p.restart.ours)} / direct ${median(p.restart.direct)} ms`,
  );
  return p;
}

async function run(ctx: RunContext, cfg: RamConfig): Promise<RamPoint[]> {
  const points: RamPoint[] = [];
  for (const ramMiB of cfg.sizes) points.push(await ramPoint(ctx, ramMiB, cfg.reps));
  return points;
}

function derive(ram: RamPoint[], _cfg: RamConfig, sink: MetricSink): void {
  if (ram.length < 2) return;
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
  sink.set('scaling', { ram: fits, stateGiB: xs });
  const slope = (name: string, value: number, what: string) => sink.metric(name, { ...metric([value], 'ms/GiB', what), n: xs.length });
  slope('checkpoint cost per GiB of state, ours (ms/GiB)', fits.checkpointMsPerGiB.ours.slope, 'slope of downtime vs state size');
  slope('checkpoint cost per GiB of state, direct (ms/GiB)', fits.checkpointMsPerGiB.direct.slope, 'slope');
  slope('dd cost per GiB (ms/GiB)', fits.checkpointMsPerGiB.dd.slope, 'slope');
  slope('restart cost per GiB of state, ours (ms/GiB)', fits.restartMsPerGiB.ours.slope, 'slope');
  slope('restart cost per GiB of state, direct (ms/GiB)', fits.restartMsPerGiB.direct.slope, 'slope');
  for (const p of ram) {
    sink.metric(`state / guest RAM at ${p.ramMiB} MiB`, metric(p.stateBytes.map((b) => b / (p.ramMiB * MiB)), '', `memfill ${p.fillMiB} MiB`));
    sink.metric(`on-disk / state at ${p.ramMiB} MiB`, metric(p.allocatedBytes.map((a, i) => a / (p.stateBytes[i] ?? Number.NaN)), '', 'du of the checkpoint folder / state bytes'));
  }
}

function charts(ram: RamPoint[], _cfg: RamConfig, all: BenchResults): Chart[] {
  if (!ram.length) return [];
  const panels: Panel[] = [
    {
      title: 'Checkpoint downtime vs guest RAM',
      xLabel: 'guest RAM (MiB), one VM, mostly filled by memfill',
      yLabel: 'ms (median, min–max)',
      series: [
        ...oursAndDirect(ram, (p) => p.checkpoint),
        { name: 'dd conv=fdatasync, same bytes', color: '#7f7f7f', points: ram.map((p) => pointOf(p.ramMiB, p.checkpoint.dd)) },
      ],
    },
    {
      title: 'Restart time vs guest RAM',
      xLabel: 'guest RAM (MiB)',
      yLabel: 'ms, call → VM resumed',
      series: oursAndDirect(ram, (p) => p.restart),
    },
  ];
  return [
    { file: 'scaling-ram.svg', svg: figure('Scaling with guest RAM', panels) },
    { file: 'size-on-disk.svg', svg: figure('Size on disk per checkpoint', sizePanels(ram, (all['disk'] as DiskCheckpoint[] | undefined) ?? [])) },
  ];
}

/** The workflows' and the direct script's times against guest RAM: two series of a panel. */
function oursAndDirect(ram: RamPoint[], pick: (p: RamPoint) => { ours: number[]; direct: number[] }): Panel['series'] {
  return [
    { name: 'workflows', points: ram.map((p) => pointOf(p.ramMiB, pick(p).ours)) },
    { name: 'direct QMP script', dash: true, points: ram.map((p) => pointOf(p.ramMiB, pick(p).direct)) },
  ];
}

/** State size against guest RAM, and (from the disk section, if it ran) the disk overlay per checkpoint. */
function sizePanels(ram: RamPoint[], disk: DiskCheckpoint[]): Panel[] {
  const panels: Panel[] = [
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
    panels.push({
      title: 'Disk overlay per checkpoint (journal guest)',
      xLabel: 'checkpoint number',
      yLabel: 'KiB',
      series: [
        { name: 'frozen overlay on disk (du)', points: disk.map((d, i) => ({ x: i + 1, y: d.overlayAllocatedBytes / 1024 })) },
        { name: 'data the guest wrote (4 KiB records)', dash: true, points: disk.map((d, i) => ({ x: i + 1, y: d.guestBytesWrittenSincePrevious / 1024 })) },
      ],
    });
  }
  return panels;
}

export const ramSection = defineSection<RamConfig, RamPoint[]>({
  name: 'ram',
  about: 'one real guest of growing RAM: checkpoint/restart time and size on disk',
  // Full: 3 repetitions per size keep the whole run within 25 minutes on a 2-core machine.
  config: { full: { sizes: [128, 256, 512, 1024, 2048], reps: 3 }, quick: { sizes: [128, 512], reps: 3 } },
  hosts: () => ['a', 'b'],
  withReps: (cfg, reps) => ({ ...cfg, reps: Math.min(cfg.reps, reps) }),
  run,
  derive,
  charts,
});
