// Sections `live` and `live-tiny`: live checkpoints (mode 'live') against stop mode on the same guests.
//   live       4 memfill guests (1 GiB of RAM in all) on hosts a and b: live and stop downtime, paired per
//              repetition; one guest of growing RAM: downtime of both modes against RAM (the chart, the
//              slope); one guest rewriting its RAM as fast as it can: its rate during the write / before.
//   live-tiny  16 `machine: none` VMs on 16 host workers: live downtime when nothing but the protocol costs.
// Downtime is the workflow's own figure: first STOP → last RESUME (QEMU's event times, as the hosts saw them).
import { join } from 'node:path';
import { linearFit, median } from '../../common/stats';
import type { ClusterSpecInput } from '../../common/spec';
import type { CheckpointResult } from '../../client';
import { consoleSize, readConsole } from '../../harness/console';
import { guestImageDir } from '../../harness/testbed';
import type { TestBed } from '../../harness/testbed';
import { deleteOurs, downQuietly, memfillSpec, waitAllConsoles } from '../bed-ops';
import { pointOf } from '../charts';
import { metric, type MetricSink } from '../results';
import { defineSection, type Chart, type RunContext } from '../section';
import { figure } from '../svg';
import { range, say } from '../util';

const GOALS = {
  live_downtime_ms_4: { op: '<=', value: 30 },
  live_downtime_ms_16: { op: '<=', value: 50 },
  live_vs_stop_downtime_ratio: { op: '<=', value: 0.05 },
} as const;

interface LiveConfig {
  /** Each of the 4 guests' RAM (MiB); 256 = 1 GiB in all. */
  fourMiB: number;
  reps: number;
  sizes: number[];
  sizeReps: number;
  slowdownMiB: number;
  slowdownReps: number;
}

interface Paired {
  live: number[];
  stop: number[];
}

export interface LiveResult {
  four: Paired & { ratio: number[]; writeMs: number[] };
  /** Live checkpoints refused by the cut check (each retried) over the section. */
  refused: number;
  sizes: Array<{ ramMiB: number } & Paired>;
  slowdown: Array<{ before: number; during: number; writeMs: number }>;
}

const fillFor = (ramMiB: number) => (ramMiB <= 256 ? ramMiB - 96 : Math.floor((ramMiB * 3) / 4));

/** Live checkpoints the cut check refused (then retried): how often a host stopped too late on this machine. */
const refusals = { count: 0 };

async function checkpointOnce(bed: TestBed, cluster: string, live: boolean): Promise<CheckpointResult> {
  for (let attempt = 1; ; attempt++) {
    const result = await bed.vccr.checkpoint(cluster, live ? { live: true } : {}).catch((err: Error) => {
      if (!live || attempt >= 3 || !/the cut is not consistent/.test(err.message)) throw err;
      refusals.count++;
      say(`live: refused by the cut check, retrying: ${err.message.slice(0, 160)}`);
      return undefined;
    });
    if (!result) continue;
    if (!('downtimeMs' in result)) throw new Error('checkpoint did not complete');
    await deleteOurs(bed, cluster, result.checkpointId);
    return result;
  }
}

const phaseMs = (r: CheckpointResult, name: string) => (r.phases[name]?.end ?? Number.NaN) - (r.phases[name]?.start ?? Number.NaN);

/** Live and stop checkpoints of one running cluster, alternating which goes first; a live warm-up first. */
async function paired(bed: TestBed, cluster: string, reps: number, onLive?: (r: CheckpointResult) => void): Promise<Paired> {
  // The first background snapshot after boot is cheaper than the steady state (it splits huge pages).
  await checkpointOnce(bed, cluster, true);
  const p: Paired = { live: [], stop: [] };
  for (const rep of range(reps)) {
    for (const live of rep % 2 === 0 ? [true, false] : [false, true]) {
      const r = await checkpointOnce(bed, cluster, live);
      (live ? p.live : p.stop).push(r.downtimeMs);
      if (live) onLive?.(r);
    }
  }
  return p;
}

async function upMemfill(bed: TestBed, spec: ClusterSpecInput): Promise<void> {
  await bed.vccr.up(spec);
  await waitAllConsoles(
    (spec.vms ?? []).map((vm) => bed.consoleLog(vm.host, spec.cluster, vm.name)),
    /^MEMFILL READY/m,
  );
}

async function fourGuests(ctx: RunContext, cfg: LiveConfig): Promise<LiveResult['four']> {
  const cluster = 'lv4';
  const vms = range(4).map((i) => ({ name: `g${i}`, host: i % 2 ? 'b' : 'a' }));
  say(`live: 4 guests × ${cfg.fourMiB} MiB on 2 hosts`);
  await upMemfill(ctx.bed, memfillSpec(ctx.bed, cluster, vms, cfg.fourMiB, fillFor(cfg.fourMiB)));
  const writeMs: number[] = [];
  const p = await paired(ctx.bed, cluster, cfg.reps, (r) => writeMs.push(phaseMs(r, 'write')));
  await ctx.bed.killAllVms();
  await downQuietly(ctx.bed, cluster);
  const ratio = p.live.map((l, i) => l / (p.stop[i] ?? Number.NaN));
  say(`live: 4 guests: downtime live ${median(p.live)} / stop ${median(p.stop)} ms`);
  return { ...p, ratio, writeMs };
}

async function sizeSweep(ctx: RunContext, cfg: LiveConfig): Promise<LiveResult['sizes']> {
  const out: LiveResult['sizes'] = [];
  for (const ramMiB of cfg.sizes) {
    const cluster = `lr${ramMiB}`;
    say(`live: one guest of ${ramMiB} MiB`);
    await upMemfill(ctx.bed, memfillSpec(ctx.bed, cluster, [{ name: 'm0', host: 'a' }], ramMiB, fillFor(ramMiB)));
    const p = await paired(ctx.bed, cluster, cfg.sizeReps);
    await ctx.bed.killAllVms();
    await downQuietly(ctx.bed, cluster);
    say(`live: ${ramMiB} MiB: downtime live ${median(p.live)} / stop ${median(p.stop)} ms`);
    out.push({ ramMiB, ...p });
  }
  return out;
}

/** memfill's RATE lines (rewrites per guest-time interval) → rewrites per second. */
function rateOf(text: string): number {
  const lines = [...text.matchAll(/^MEMFILL RATE n=\d+ ms=(\d+) rewrites=(\d+)$/gm)];
  const ms = lines.reduce((s, m) => s + Number(m[1]), 0);
  const rewrites = lines.reduce((s, m) => s + Number(m[2]), 0);
  return ms ? (rewrites * 1000) / ms : Number.NaN;
}

/** One guest rewriting its RAM at full speed: its rate in the 2 s before the checkpoint and during the write. */
async function slowdown(ctx: RunContext, cfg: LiveConfig): Promise<LiveResult['slowdown']> {
  if (cfg.slowdownReps === 0) return [];
  const { bed } = ctx;
  const cluster = 'lsd';
  const ramMiB = cfg.slowdownMiB;
  const spec = memfillSpec(bed, cluster, [{ name: 's0', host: 'a' }], ramMiB, fillFor(ramMiB));
  const image = guestImageDir();
  const vm = spec.vms[0];
  if (!vm) throw new Error('no VM');
  vm.boot = {
    kernel: join(image, 'vmlinuz'),
    initrd: join(image, 'initrd.img'),
    append: `console=ttyS0 quiet panic=-1 vccr.run=memfill vccr.args=--mb,${fillFor(ramMiB)},--delay-ms,0,--alive-every,1000000000,--rate-ms,100`,
  };
  say(`live: slowdown, one ${ramMiB} MiB guest rewriting its RAM`);
  await bed.vccr.up(spec);
  const path = bed.consoleLog('a', cluster, 's0');
  await waitAllConsoles([path], /^MEMFILL RATE /m);
  await checkpointOnce(bed, cluster, true); // warm-up
  const out: LiveResult['slowdown'] = [];
  for (const _ of range(cfg.slowdownReps)) {
    const since = consoleSize(path);
    await new Promise((r) => setTimeout(r, 2000));
    const result = await bed.vccr.checkpoint(cluster, { live: true });
    if (!('downtimeMs' in result)) throw new Error('checkpoint did not complete');
    const done = consoleSize(path);
    const { manifest } = await bed.vccr.checkpoints.show(cluster, result.checkpointId);
    const atPause = manifest.vms[0]?.console?.offsetAtPause ?? since;
    out.push({ before: rateOf(readConsole(path, since, atPause)), during: rateOf(readConsole(path, atPause, done)), writeMs: phaseMs(result, 'write') });
    await deleteOurs(bed, cluster, result.checkpointId);
  }
  await bed.killAllVms();
  await downQuietly(bed, cluster);
  return out;
}

async function run(ctx: RunContext, cfg: LiveConfig): Promise<LiveResult> {
  refusals.count = 0;
  const four = await fourGuests(ctx, cfg);
  const sizes = await sizeSweep(ctx, cfg);
  const slow = await slowdown(ctx, cfg);
  return { four, sizes, slowdown: slow, refused: refusals.count };
}

function derive(r: LiveResult, cfg: LiveConfig, sink: MetricSink): void {
  const all = `4 memfill guests × ${cfg.fourMiB} MiB on 2 hosts`;
  sink.headline('live_downtime_ms_4', 'live_downtime_ms_4 (4 guests, 2 hosts)', metric(r.four.live, 'ms', `${all}: first STOP → last RESUME, live mode`, GOALS.live_downtime_ms_4));
  sink.headline('live_vs_stop_downtime_ratio', 'live_vs_stop_downtime_ratio', metric(r.four.ratio, '', `${all}: live / stop-mode downtime, paired per repetition`, GOALS.live_vs_stop_downtime_ratio));
  sink.metric('stop downtime, 4 guests (ms)', metric(r.four.stop, 'ms', all));
  sink.metric('live checkpoints refused by the cut check', metric([r.refused], '', 'over the section (each retried, up to 3 attempts)'));
  sink.metric('live write phase, 4 guests (ms)', metric(r.four.writeMs, 'ms', `${all}: the background writes, guests running`));
  if (r.sizes.length >= 2) {
    const fit = linearFit(r.sizes.flatMap((p) => p.live.map(() => p.ramMiB / 1024)), r.sizes.flatMap((p) => p.live));
    // One fit over all repetitions: n is the number of sizes, min/max the per-size medians' slope range is not defined.
    sink.headline('live_downtime_slope_ms_per_gib', 'live_downtime_slope_ms_per_gib (one guest, 128 MiB → 1 GiB)', {
      ...metric([fit.slope], 'ms/GiB', `slope of live downtime against guest RAM (${r.sizes.map((p) => p.ramMiB).join(', ')} MiB), r² ${fit.r2.toFixed(2)}`),
      n: r.sizes.reduce((s, p) => s + p.live.length, 0),
    });
  }
  const ratios = r.slowdown.map((s) => s.during / s.before).filter((x) => Number.isFinite(x));
  if (!ratios.length) return;
  sink.headline('live_guest_slowdown', 'live_guest_slowdown (rate during the write / before)', metric(ratios, '', `one ${cfg.slowdownMiB} MiB guest rewriting its RAM as fast as it can (memfill): rewrites/s while the snapshot is written / in the 2 s before`));
}

function charts(r: LiveResult): Chart[] {
  if (!r.sizes.length) return [];
  return [
    {
      file: 'live-vs-stop-downtime.svg',
      svg: figure('Live vs stop checkpoints', [
        {
          title: 'Downtime vs guest RAM (one memfill guest)',
          xLabel: 'guest RAM (MiB)',
          yLabel: 'ms, first STOP → last RESUME (median, min–max)',
          series: [
            { name: 'stop mode', points: r.sizes.map((p) => pointOf(p.ramMiB, p.stop)) },
            { name: 'live mode', dash: true, points: r.sizes.map((p) => pointOf(p.ramMiB, p.live)) },
          ],
        },
      ]),
    },
  ];
}

export const liveSection = defineSection<LiveConfig, LiveResult>({
  name: 'live',
  about: 'live checkpoints vs stop mode: downtime (4 guests, against RAM), guest slowdown during the write',
  config: {
    full: { fourMiB: 256, reps: 5, sizes: [128, 256, 512, 1024], sizeReps: 3, slowdownMiB: 1024, slowdownReps: 3 },
    // Quick (the whole --quick must stay within 8 minutes): 3 reps of the headline pair, the RAM sweep's two
    // ends only (the slope's definition: 128 MiB → 1 GiB), one slowdown measurement on a smaller guest.
    quick: { fourMiB: 128, reps: 3, sizes: [128, 1024], sizeReps: 1, slowdownMiB: 256, slowdownReps: 1 },
  },
  hosts: () => ['a', 'b'],
  withReps: (cfg, reps) => ({ ...cfg, reps: Math.min(cfg.reps, reps) }),
  run,
  derive,
  charts,
});

interface TinyLiveConfig {
  hosts: number;
  reps: number;
}

async function runTiny(ctx: RunContext, cfg: TinyLiveConfig): Promise<Paired & { refused: number }> {
  refusals.count = 0;
  const cluster = 'lt16';
  const hostIds = range(cfg.hosts).map((i) => `h${i}`);
  const vms = range(16).map((i) => ({ name: `v${String(i).padStart(3, '0')}`, host: hostIds[i % cfg.hosts] as string, memoryMiB: 16, machine: 'none' as const }));
  await ctx.bed.vccr.up({ cluster, store: ctx.bed.store, pauseBoundSeconds: 120, hosts: Object.fromEntries(hostIds.map((h) => [h, {}])), vms });
  const p = await paired(ctx.bed, cluster, cfg.reps);
  await ctx.bed.killAllVms();
  await downQuietly(ctx.bed, cluster);
  say(`live-tiny: 16 VMs on ${cfg.hosts} hosts: downtime live ${median(p.live)} / stop ${median(p.stop)} ms`);
  return { ...p, refused: refusals.count };
}

export const liveTinySection = defineSection<TinyLiveConfig, Paired & { refused: number }>({
  name: 'live-tiny',
  about: 'live checkpoints of 16 tiny VMs on 16 host workers: what the protocol itself costs',
  config: { full: { hosts: 16, reps: 5 }, quick: { hosts: 16, reps: 1 } },
  hosts: (cfg) => range(cfg.hosts).map((i) => `h${i}`),
  withReps: (cfg, reps) => ({ ...cfg, reps: Math.min(cfg.reps, reps) }),
  run: runTiny,
  derive: (r, cfg, sink) => {
    sink.headline('live_downtime_ms_16', `live_downtime_ms_16 (16 VMs, ${cfg.hosts} hosts)`, metric(r.live, 'ms', `16 tiny VMs on ${cfg.hosts} host workers: first STOP → last RESUME, live mode`, GOALS.live_downtime_ms_16));
    sink.metric(`stop downtime, 16 tiny VMs on ${cfg.hosts} hosts (ms)`, metric(r.stop, 'ms', 'same VMs, stop mode'));
    sink.metric(`live checkpoints of 16 tiny VMs refused by the cut check`, metric([r.refused], '', 'each retried, up to 3 attempts'));
  },
});
