// The live-snapshot lab: what live mode's design depends on, per VM, measured with the migration layer on
// real QEMU 7.2 and the test guest (no Temporal). Prints tables and writes bench/results/live-lab-<time>.json.
//
//   node dist/bench/live-lab.js [--sizes 128,256,512,1024] [--reps 3] [--only downtime,slowdown,pair] [--store DIR]
//
// Sections:
//   downtime  per-VM downtime vs guest RAM, with/without -mem-prealloc: (a) QEMU stops the running VM itself
//             (its STOP→RESUME), (b) our sequence: pause, freeze the disk, snapshot (our STOP→QEMU's RESUME),
//             split into stop, freeze, migrate→setup, setup→active (QEMU reads every guest page so that all
//             are populated), active→RESUME (device state saved, RAM registered and write-protected); the
//             background write's throughput; (c) for comparison, a stop-mode save of the same VM (STOP→RESUME)
//   slowdown  memfill rewriting pages as fast as it can: its rate before, during and after the write
//   pair      two VMs paused at the same instant and snapshotted at the same instant
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pauseVm, prepareBackgroundSnapshot, resumeVm, saveToStream, waitUntil, type PreparedSnapshot } from '../activities/host/migration';
import { GuestVm } from '../harness/guest-vm';
import { janitor } from '../harness/janitor';
import { summarize, type Summary } from '../common/stats';

const MiB = 1024 * 1024;
const fillFor = (ramMiB: number) => (ramMiB <= 256 ? ramMiB - 96 : Math.floor((ramMiB * 3) / 4));

function say(msg: string): void {
  process.stderr.write(`[live-lab] ${msg}\n`);
}

/** A guest with a qcow2 disk in its own folder; everything removed by close(). */
class LabVm {
  private layers = 0;

  private constructor(readonly vm: GuestVm, readonly dir: string) {}

  static async boot(name: string, ramMiB: number, prealloc: boolean, workload: string): Promise<LabVm> {
    const dir = mkdtempSync(join(tmpdir(), 'vccr-lab-'));
    janitor.trackPath(dir);
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', join(dir, 'base.raw'), '16M']);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', join(dir, 'base.raw'), join(dir, 'layer0.qcow2')]);
    const vm = await GuestVm.start({ name, dir, memoryMiB: ramMiB, prealloc, append: workload, disk: join(dir, 'layer0.qcow2') });
    await vm.waitForConsole(/^MEMFILL (ALIVE|RATE) /m, 0, 300_000);
    return new LabVm(vm, dir);
  }

  nextLayer(): string {
    return join(this.dir, `layer${++this.layers}.qcow2`);
  }

  async close(): Promise<void> {
    await this.vm.kill();
    rmSync(this.dir, { recursive: true, force: true });
    janitor.untrackPath(this.dir);
  }
}

type Mode = 'qemu-stops' | 'paused-frozen' | 'stop-mode';
const MODES: readonly Mode[] = ['paused-frozen', 'qemu-stops', 'stop-mode'];

/** Where state files go (--store): the disk by default; a tmpfs separates QEMU's speed from the disk's. */
let STORE = tmpdir();

interface Sample {
  ramMiB: number;
  prealloc: boolean;
  mode: Mode;
  rep: number;
  prepareMs: number;
  /** pauseVm(): `stop` sent → reply (and query-status). */
  stopCmdMs: number;
  freezeMs: number;
  migrateToSetupMs: number;
  setupToActiveMs: number;
  activeToResumeMs: number;
  migrateToResumeMs: number;
  /** STOP (ours or QEMU's) → QEMU's RESUME, both QEMU timestamps. */
  downtimeMs: number;
  /** query-migrate's `downtime` (QEMU's own figure). */
  qemuDowntimeMs: number;
  writeMs: number;
  bytes: number;
  mbPerS: number;
  info: Record<string, unknown>;
}

/** Pause and freeze the disk (a new qcow2 overlay on top while paused); returns our STOP time. */
async function pauseAndFreeze(lab: LabVm): Promise<{ stoppedAt: number; stopCmdMs: number; freezeMs: number }> {
  const t1 = performance.now();
  const stoppedAt = (await pauseVm(lab.vm.qmp, lab.vm.options.name)).atMs;
  const stopCmdMs = performance.now() - t1;
  const t2 = performance.now();
  await lab.vm.qmp.command('blockdev-snapshot-sync', { device: 'drive-d0', 'snapshot-file': lab.nextLayer(), format: 'qcow2' });
  return { stoppedAt, stopCmdMs, freezeMs: performance.now() - t2 };
}

/** One snapshot: prepared while the VM runs; then either QEMU stops it, or we pause + freeze first. */
async function snapshotOnce(lab: LabVm, mode: Mode): Promise<Omit<Sample, 'ramMiB' | 'prealloc' | 'rep'>> {
  if (mode === 'stop-mode') return stopModeOnce(lab);
  const { vm } = lab;
  const name = vm.options.name;
  const file = join(STORE, `lab-${vm.pid}.state`);
  const t0 = performance.now();
  const prepared = await prepareBackgroundSnapshot(vm.qmp, { vm: name, socketPath: join(lab.dir, 'snap.sock'), file });
  const prepareMs = performance.now() - t0;
  const paused = mode === 'paused-frozen' ? await pauseAndFreeze(lab) : { stoppedAt: undefined, stopCmdMs: 0, freezeMs: 0 };
  const snap = await prepared.start();
  const result = await snap.done.finally(() => rmSync(file, { force: true }));
  const { times } = snap;
  const writeMs = result.end.atMs - times.resumedAtMs;
  return {
    mode, prepareMs, stopCmdMs: paused.stopCmdMs, freezeMs: paused.freezeMs,
    migrateToSetupMs: (times.setupAtMs ?? Number.NaN) - times.migrateAtMs,
    setupToActiveMs: (times.activeAtMs ?? Number.NaN) - (times.setupAtMs ?? Number.NaN),
    activeToResumeMs: times.resumedAtMs - (times.activeAtMs ?? Number.NaN),
    migrateToResumeMs: times.resumedAtMs - times.migrateAtMs,
    downtimeMs: times.resumedAtMs - (paused.stoppedAt ?? times.stoppedAtMs ?? Number.NaN),
    qemuDowntimeMs: result.end.info.downtime ?? Number.NaN,
    writeMs, bytes: result.size, mbPerS: result.size / MiB / (writeMs / 1000),
    info: result.end.info,
  };
}

/** Stop mode for comparison: pause, freeze, save the whole state while paused, cont. */
async function stopModeOnce(lab: LabVm): Promise<Omit<Sample, 'ramMiB' | 'prealloc' | 'rep'>> {
  const { vm } = lab;
  const file = join(STORE, `lab-${vm.pid}.state`);
  const paused = await pauseAndFreeze(lab);
  const saved = await saveToStream(vm.qmp, { vm: vm.options.name, socketPath: join(lab.dir, 'save.sock'), file }).finally(() => rmSync(file, { force: true }));
  const resumed = await resumeVm(vm.qmp, vm.options.name);
  const writeMs = saved.end.atMs - saved.startedAtMs;
  const nan = Number.NaN;
  return {
    mode: 'stop-mode', prepareMs: 0, stopCmdMs: paused.stopCmdMs, freezeMs: paused.freezeMs,
    migrateToSetupMs: nan, setupToActiveMs: nan, activeToResumeMs: nan, migrateToResumeMs: resumed.atMs - saved.startedAtMs,
    downtimeMs: resumed.atMs - paused.stoppedAt, qemuDowntimeMs: saved.end.info.downtime ?? nan,
    writeMs, bytes: saved.size, mbPerS: saved.size / MiB / (writeMs / 1000), info: saved.end.info,
  };
}

async function downtimeSection(sizes: number[], reps: number): Promise<Sample[]> {
  const samples: Sample[] = [];
  for (const ramMiB of sizes) {
    for (const prealloc of [false, true]) {
      say(`downtime: ${ramMiB} MiB${prealloc ? ' -mem-prealloc' : ''}: booting (memfill ${fillFor(ramMiB)} MiB)`);
      await eachRep({ ramMiB, prealloc, memfillArgs: `--mb,${fillFor(ramMiB)},--delay-ms,2` }, reps, async (lab, rep) => {
        for (const mode of MODES) samples.push({ ramMiB, prealloc, rep, ...(await snapshotOnce(lab, mode)) });
      });
    }
  }
  return samples;
}

/** Boots one lab VM running memfill, runs `step` `reps` times on it, and removes it. */
async function eachRep(vm: { ramMiB: number; prealloc: boolean; memfillArgs: string }, reps: number, step: (lab: LabVm, rep: number) => Promise<void>): Promise<void> {
  const lab = await LabVm.boot('lab', vm.ramMiB, vm.prealloc, `vccr.run=memfill vccr.args=${vm.memfillArgs}`);
  try {
    for (let rep = 1; rep <= reps; rep++) await step(lab, rep);
  } finally {
    await lab.close();
  }
}

interface RateWindow {
  rewritesPerS: number;
  intervals: number;
}

function rateOf(text: string): RateWindow {
  const lines = [...text.matchAll(/^MEMFILL RATE n=\d+ ms=(\d+) rewrites=(\d+)$/gm)];
  const ms = lines.reduce((s, m) => s + Number(m[1]), 0);
  const rewrites = lines.reduce((s, m) => s + Number(m[2]), 0);
  return { rewritesPerS: ms ? (rewrites * 1000) / ms : Number.NaN, intervals: lines.length };
}

interface SlowdownSample {
  ramMiB: number;
  before: RateWindow;
  during: RateWindow;
  after: RateWindow;
  writeMs: number;
  downtimeMs: number;
  mbPerS: number;
}

/** memfill at full speed (RATE every 100 ms of guest time): before the pause, during the write, after it. */
async function slowdownSection(sizes: number[], reps: number): Promise<SlowdownSample[]> {
  const out: SlowdownSample[] = [];
  for (const ramMiB of sizes) {
    const memfillArgs = `--mb,${fillFor(ramMiB)},--delay-ms,0,--alive-every,1000000000,--rate-ms,100`;
    say(`slowdown: ${ramMiB} MiB: booting`);
    await eachRep({ ramMiB, prealloc: false, memfillArgs }, reps, async (lab) => {
      const { vm } = lab;
      const since = vm.consoleSize();
      await new Promise((r) => setTimeout(r, 2000));
      const file = join(STORE, `lab-${vm.pid}.state`);
      const prepared = await prepareBackgroundSnapshot(vm.qmp, { vm: 'lab', socketPath: join(lab.dir, 'snap.sock'), file });
      const { stoppedAt } = await pauseAndFreeze(lab);
      const atPause = vm.consoleSize();
      const snap = await prepared.start();
      const atResume = vm.consoleSize();
      const result = await snap.done.finally(() => rmSync(file, { force: true }));
      const atDone = vm.consoleSize();
      await new Promise((r) => setTimeout(r, 2000));
      const writeMs = result.end.atMs - snap.times.resumedAtMs;
      out.push({
        ramMiB,
        before: rateOf(vm.console(since, atPause)),
        during: rateOf(vm.console(atResume, atDone)),
        after: rateOf(vm.console(atDone)),
        writeMs, downtimeMs: snap.times.resumedAtMs - stoppedAt, mbPerS: result.size / MiB / (writeMs / 1000),
      });
    });
  }
  return out;
}

interface PairSample {
  stopSkewMs: number;
  migrateSkewMs: number;
  resumeSkewMs: number;
  /** STOP → RESUME per VM: includes the planned 50 ms between the pause and the snapshot instant. */
  downtimeMs: number[];
  /** `migrate` sent → RESUME per VM (what the snapshot itself adds to the pause). */
  migrateToResumeMs: number[];
  /** `migrate` sent − the planned instant, per VM (waitUntil's precision, plus a freeze that ran late). */
  lateMs: number[];
  writeMs: number[];
  mbPerS: number[];
  cutHolds: boolean;
}

/** Two VMs: paused at the same instant T, frozen, snapshotted at T + 50 ms (files in STORE). */
async function pairSection(ramMiB: number, reps: number): Promise<PairSample[]> {
  say(`pair: two ${ramMiB} MiB VMs: booting`);
  const labs = await Promise.all(['a', 'b'].map((n) => LabVm.boot(n, ramMiB, false, `vccr.run=memfill vccr.args=--mb,${fillFor(ramMiB)},--delay-ms,2`)));
  const out: PairSample[] = [];
  try {
    for (let rep = 1; rep <= reps; rep++) {
      const prepared = await Promise.all(
        labs.map((l) => prepareBackgroundSnapshot(l.vm.qmp, { vm: l.vm.options.name, socketPath: join(l.dir, 'snap.sock'), file: join(STORE, `lab-${l.vm.pid}.state`) })),
      );
      const T = Date.now() + 200;
      const runs = await Promise.all(
        labs.map(async (lab, i) => {
          await waitUntil(T);
          const { stoppedAt } = await pauseAndFreeze(lab);
          const snap = await (prepared[i] as PreparedSnapshot).start(T + 50);
          const result = await snap.done.finally(() => rmSync(join(STORE, `lab-${lab.vm.pid}.state`), { force: true }));
          return { stoppedAt, times: snap.times, writeMs: result.end.atMs - snap.times.resumedAtMs, bytes: result.size };
        }),
      );
      const spread = (xs: number[]) => Math.max(...xs) - Math.min(...xs);
      out.push({
        stopSkewMs: spread(runs.map((r) => r.stoppedAt)),
        migrateSkewMs: spread(runs.map((r) => r.times.migrateAtMs)),
        resumeSkewMs: spread(runs.map((r) => r.times.resumedAtMs)),
        downtimeMs: runs.map((r) => r.times.resumedAtMs - r.stoppedAt),
        migrateToResumeMs: runs.map((r) => r.times.resumedAtMs - r.times.migrateAtMs),
        lateMs: runs.map((r) => r.times.migrateAtMs - (T + 50)),
        writeMs: runs.map((r) => r.writeMs),
        mbPerS: runs.map((r) => r.bytes / MiB / (r.writeMs / 1000)),
        cutHolds: Math.max(...runs.map((r) => r.stoppedAt)) < Math.min(...runs.map((r) => r.times.resumedAtMs)),
      });
    }
  } finally {
    await Promise.all(labs.map((l) => l.close()));
  }
  return out;
}

const fmt = (s: Summary, digits = 1) => `${s.median.toFixed(digits)} [${s.min.toFixed(digits)}–${s.max.toFixed(digits)}]`;

function printDowntime(samples: Sample[]): void {
  const keys: Array<keyof Sample> = ['downtimeMs', 'stopCmdMs', 'freezeMs', 'migrateToSetupMs', 'setupToActiveMs', 'activeToResumeMs', 'migrateToResumeMs', 'qemuDowntimeMs', 'prepareMs', 'writeMs', 'mbPerS'];
  const groups = new Map<string, Sample[]>();
  for (const s of samples) {
    const key = `${s.mode} ${s.ramMiB} MiB${s.prealloc ? ' prealloc' : ''}`;
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  process.stdout.write(`\n| case | ${keys.join(' | ')} |\n|${' --- |'.repeat(keys.length + 1)}\n`);
  for (const [key, group] of groups) {
    const cells = keys.map((k) => fmt(summarize(group.map((s) => s[k] as number))));
    process.stdout.write(`| ${key} (n=${group.length}) | ${cells.join(' | ')} |\n`);
  }
  // The first background snapshot after boot finds guest RAM in huge pages; it splits them for good.
  process.stdout.write('\n| paused-frozen | first after boot: downtime / setup→active / active→RESUME | later: downtime / setup→active / active→RESUME |\n| --- | --- | --- |\n');
  for (const [key, group] of groups) {
    if (!key.startsWith('paused-frozen')) continue;
    const cols = [group.filter((s) => s.rep === 1), group.filter((s) => s.rep > 1)].map((g) =>
      (['downtimeMs', 'setupToActiveMs', 'activeToResumeMs'] as const).map((k) => fmt(summarize(g.map((s) => s[k])))).join(' / '),
    );
    process.stdout.write(`| ${key} | ${cols.join(' | ')} |\n`);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { sizes: { type: 'string' }, reps: { type: 'string' }, only: { type: 'string' }, store: { type: 'string' } }, strict: true });
  STORE = values.store ?? STORE;
  const sizes = (values.sizes ?? '128,256,512,1024').split(',').map(Number);
  const reps = Number(values.reps ?? 3);
  const only = new Set((values.only ?? 'downtime,slowdown,pair').split(','));
  const results: Record<string, unknown> = { startedAt: new Date().toISOString(), loadavgBefore: loadavg(), sizes, reps, store: STORE };
  if (only.has('downtime')) {
    const samples = await downtimeSection(sizes, reps);
    results.downtime = samples;
    printDowntime(samples);
  }
  if (only.has('slowdown')) {
    const slow = await slowdownSection([256, 1024].filter((s) => sizes.includes(s)), reps);
    results.slowdown = slow;
    for (const s of slow) {
      const ratio = s.during.rewritesPerS / s.before.rewritesPerS;
      process.stdout.write(`slowdown ${s.ramMiB} MiB: before ${s.before.rewritesPerS.toFixed(0)}/s (${s.before.intervals}), during ${s.during.rewritesPerS.toFixed(0)}/s (${s.during.intervals}), after ${s.after.rewritesPerS.toFixed(0)}/s; during/before ${ratio.toFixed(2)}; write ${s.writeMs.toFixed(0)} ms at ${s.mbPerS.toFixed(0)} MiB/s; downtime ${s.downtimeMs.toFixed(1)} ms\n`);
    }
  }
  if (only.has('pair')) {
    const pair = await pairSection(512, reps);
    results.pair = pair;
    for (const p of pair) process.stdout.write(`pair: ${JSON.stringify(p)}\n`);
  }
  results.loadavgAfter = loadavg();
  const dir = resolve(__dirname, '..', '..', 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const out = join(dir, `live-lab-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(out, JSON.stringify(results, null, 2));
  say(`load average before ${JSON.stringify(results.loadavgBefore)}, after ${JSON.stringify(results.loadavgAfter)}; wrote ${out}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`live-lab failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
