// Section `protect` of `npm run bench` (--only protect): what continuous protection costs and how
// fast it brings a cluster back.
//   protected_overhead_pct  a CPU- and network-bound guest workload (a 3-node token ring passing tokens with
//                           no delay) measured in windows without protection and with a checkpoint every 30 s
//                           (stop-and-save; live where available), alternating; 1 − protected/unprotected.
//   chain_length_after_30   the longest disk chain (layers, qcow2 headers) under a running VM after 30
//                           scheduled checkpoints with --keep-last 3, and the store's size against what it keeps.
//   recovery_ms             host failure (its worker and its QEMUs SIGKILLed) → every VM of the cluster running
//                           again from its checkpoint, VMs of the dead host on a spare: detection + restart.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { guestImageDir, type TestBed } from '../../harness/testbed';
import { readConsole, waitForConsole } from '../../harness/console';
import { killRecordedVms } from '../../harness/janitor';
import { sleep } from '../../node/proc';
import { LIVE_CHECKPOINTS_AVAILABLE, type WatchSettings } from '../../common/protection';
import type { ClusterSpecInput } from '../../common/spec';
import { metric, type MetricSink } from '../results';
import { defineSection } from '../section';
import { say } from '../util';

export interface ProtectBenchConfig {
  /** Length of one throughput window, and how many of each kind (alternating). */
  windowSec: number;
  windows: number;
  everySec: number;
  chainCheckpoints: number;
  /** The schedule of the chain's checkpoints (a run that would overlap the one before is skipped). */
  chainEveryMs: number;
  recoveryReps: number;
}
// Quick: one 35-s window per mode (a 30-s schedule fires at least once in it), the chain's checkpoints back to
// back, and one recovery, to keep --quick within 8 minutes.
export const PROTECT_QUICK: ProtectBenchConfig = { windowSec: 35, windows: 1, everySec: 30, chainCheckpoints: 30, chainEveryMs: 1000, recoveryReps: 1 };
export const PROTECT_FULL: ProtectBenchConfig = { windowSec: 150, windows: 3, everySec: 30, chainCheckpoints: 30, chainEveryMs: 2000, recoveryReps: 5 };

/** The watch settings recovery_ms is measured with (the defaults add ~13 s of grace and polling). */
export const BENCH_WATCH: Partial<WatchSettings> = { checkEverySeconds: 2, graceSeconds: 5, pickupSeconds: 3 };

export interface ProtectBenchResult {
  config: ProtectBenchConfig;
  watch: Partial<WatchSettings>;
  overhead: {
    /** Ring tokens per second in each window. */
    unprotected: number[];
    stop: number[];
    live: number[] | 'not available in this version';
    checkpointsPerProtectedWindow: number[];
  };
  chain: { checkpoints: number; longestRunningChain: number; longestCheckpointChain: number; storeBytes: number; keptStateBytes: number; keptCheckpoints: number };
  recovery: Array<{ recoveryMs: number; detectMs: number; restartMs: number; from: string; to: string; checkpointId: string }>;
}

const CLUSTER = 'bp';
const RING = [
  { name: 'r0', host: 'a' },
  { name: 'r1', host: 'b' },
  { name: 'r2', host: 'a' },
];
const JOURNAL = { name: 'jnl', host: 'b' };

function spec(bed: TestBed): ClusterSpecInput {
  const image = guestImageDir();
  const ip = (i: number) => `10.77.0.${11 + i}`;
  const base = join(bed.dir, 'bench-journal.raw');
  execFileSync('qemu-img', ['create', '-q', '-f', 'raw', base, '256M']);
  const boot = (append: string) => ({ kernel: join(image, 'vmlinuz'), initrd: join(image, 'initrd.img'), append: `console=ttyS0 quiet panic=-1 init_on_free=1 ${append}` });
  return {
    cluster: CLUSTER,
    store: bed.store,
    pauseBoundSeconds: 60,
    hosts: { a: {}, b: {}, c: {} },
    spareHosts: ['c', 'b'],
    fencing: 'unreachable-is-dead',
    vms: [
      ...RING.map((vm, i) => ({
        name: vm.name,
        host: vm.host,
        memoryMiB: 128,
        boot: boot(`vccr.ip=${ip(i)}/24 vccr.run=ring vccr.args=--id,${i},--nodes,3,--listen,7000,--next,${ip((i + 1) % 3)}:7000,--delay-ms,0,--print-every,200,--stall-sec,120`),
        nics: [{ id: 'net0', tap: bed.network?.taps[i] ?? `tap${i}` }],
        ...(bed.network ? { netns: bed.network.name } : {}),
      })),
      { name: JOURNAL.name, host: JOURNAL.host, memoryMiB: 128, boot: boot('vccr.run=journal vccr.args=write,--dev,/dev/vda,--delay-ms,20'), disks: [{ id: 'data', image: base, format: 'raw' }] },
    ],
  };
}

/** The last token value node 0 printed (it grows by one per hop around the ring). */
function lastToken(path: string): number {
  const m = [...readConsole(path).matchAll(/^RING TOKEN id=0 value=(\d+)$/gm)].at(-1);
  return Number(m?.[1] ?? Number.NaN);
}

async function throughput(bed: TestBed, seconds: number): Promise<number> {
  const placement = (await bed.vccr.clusterState(CLUSTER))?.placement ?? {};
  const path = bed.consoleLog(placement.r0 ?? 'a', CLUSTER, 'r0');
  const [v0, t0] = [lastToken(path), Date.now()];
  await sleep(seconds * 1000);
  return (lastToken(path) - v0) / ((Date.now() - t0) / 1000);
}

async function committedIds(bed: TestBed): Promise<string[]> {
  return (await bed.vccr.checkpoints.list(CLUSTER)).committed.map((c) => c.checkpointId);
}

async function overheadSection(bed: TestBed, cfg: ProtectBenchConfig, say: (m: string) => void): Promise<ProtectBenchResult['overhead']> {
  const out: ProtectBenchResult['overhead'] = { unprotected: [], stop: [], live: LIVE_CHECKPOINTS_AVAILABLE ? [] : 'not available in this version', checkpointsPerProtectedWindow: [] };
  const modes: Array<'stop' | 'live'> = LIVE_CHECKPOINTS_AVAILABLE ? ['stop', 'live'] : ['stop'];
  for (let w = 0; w < cfg.windows; w++) {
    await bed.vccr.protection.off(CLUSTER);
    out.unprotected.push(await throughput(bed, cfg.windowSec));
    for (const mode of modes) {
      await bed.vccr.protection.protect(CLUSTER, { everyMs: cfg.everySec * 1000, jitterMs: 0, live: mode === 'live', retention: { keepLast: 3 }, watch: BENCH_WATCH });
      const before = new Set(await committedIds(bed));
      const rate = await throughput(bed, cfg.windowSec);
      out.checkpointsPerProtectedWindow.push((await committedIds(bed)).filter((id) => !before.has(id)).length);
      if (mode === 'stop') out.stop.push(rate);
      else if (Array.isArray(out.live)) out.live.push(rate);
      say(`protect window ${w + 1}/${cfg.windows}: unprotected ${out.unprotected.at(-1)?.toFixed(0)} tokens/s, ${mode} every ${cfg.everySec} s ${rate.toFixed(0)} tokens/s`);
    }
  }
  await bed.vccr.protection.off(CLUSTER);
  return out;
}

function du(path: string): number {
  return Number(execFileSync('du', ['-s', '-B1', path], { encoding: 'utf8' }).split('\t')[0]);
}

function chainLength(top: string): number {
  return (JSON.parse(execFileSync('qemu-img', ['info', '-U', '--backing-chain', '--output=json', top], { encoding: 'utf8' })) as unknown[]).length;
}

async function chainSection(bed: TestBed, cfg: ProtectBenchConfig, say: (m: string) => void): Promise<ProtectBenchResult['chain']> {
  const client = await bed.temporal();
  const runs = async () => {
    let n = 0;
    for await (const wf of client.workflow.list({ query: `WorkflowType = 'protectCluster' AND VccrCluster = '${CLUSTER}' AND ExecutionStatus = 'Completed'` })) if (wf) n++;
    return n;
  };
  const start = await runs();
  await bed.vccr.protection.protect(CLUSTER, { everyMs: cfg.chainEveryMs, jitterMs: 0, retention: { keepLast: 3 }, watch: BENCH_WATCH });
  while ((await runs()) - start < cfg.chainCheckpoints) await sleep(1000);
  await bed.vccr.protection.off(CLUSTER);
  await sleep(5000); // a run in flight finishes its retention
  const list = (await bed.vccr.checkpoints.list(CLUSTER)).committed;
  const chainJson = JSON.parse(readConsole(join(bed.store, CLUSTER, '_disks', JOURNAL.name, 'data', 'chain.json'))) as { active: string };
  const checkpointChains = [];
  for (const c of list) {
    const { manifest } = await bed.vccr.checkpoints.show(CLUSTER, c.checkpointId);
    checkpointChains.push(chainLength(manifest.vms.find((v) => v.name === JOURNAL.name)?.disks[0]?.frozen ?? ''));
  }
  const result = {
    checkpoints: (await runs()) - start,
    longestRunningChain: chainLength(chainJson.active),
    longestCheckpointChain: Math.max(...checkpointChains),
    storeBytes: du(join(bed.store, CLUSTER)),
    keptStateBytes: list.reduce((s, c) => s + c.totalBytes, 0),
    keptCheckpoints: list.length,
  };
  say(`chain after ${result.checkpoints} checkpoints (keep-last 3): running ${result.longestRunningChain} layers, store ${(result.storeBytes / 2 ** 20).toFixed(0)} MiB for ${result.keptCheckpoints} kept checkpoints of ${(result.keptStateBytes / 2 ** 20).toFixed(0)} MiB`);
  return result;
}

async function recoverySection(bed: TestBed, cfg: ProtectBenchConfig, say: (m: string) => void): Promise<ProtectBenchResult['recovery']> {
  await bed.vccr.protection.protect(CLUSTER, { everyMs: 3_600_000, retention: { keepLast: 3 }, watch: { ...BENCH_WATCH, maxRecoveriesPerHour: 100 } });
  const out: ProtectBenchResult['recovery'] = [];
  for (let rep = 0; rep < cfg.recoveryReps; rep++) {
    const placement = (await bed.vccr.clusterState(CLUSTER))?.placement ?? {};
    const victim = placement.r1 ?? 'b';
    const before = (await bed.vccr.protection.watchState(CLUSTER))?.recoveries.length ?? 0;
    const killedAt = Date.now();
    await bed.hostWorkers.get(victim)?.kill();
    await killRecordedVms(bed.hostStateDir(victim));
    let state = await bed.vccr.protection.watchState(CLUSTER);
    while (!(state && state.recoveries.length > before && state.phase === 'watching')) {
      if (Date.now() - killedAt > 300_000) throw new Error(`no recovery after 300 s (watch: ${state?.phase}: ${state?.reason})`);
      await sleep(100);
      state = await bed.vccr.protection.watchState(CLUSTER);
    }
    const r = state.recoveries.at(-1);
    if (!r || r.outcome !== 'completed' || !r.checkpointId) throw new Error(`recovery failed: ${r?.detail}`);
    const records = JSON.parse(readConsole(join(bed.store, CLUSTER, '_recoveries', `${r.workflowId}.json`))) as { restartMs: number };
    out.push({ recoveryMs: r.endedAt - killedAt, detectMs: r.startedAt - killedAt, restartMs: records.restartMs, from: victim, to: r.placement?.r1 ?? '?', checkpointId: r.checkpointId });
    say(`recovery ${rep + 1}/${cfg.recoveryReps}: host ${victim} killed → all VMs running on ${JSON.stringify(r.placement)} after ${r.endedAt - killedAt} ms (detection ${r.startedAt - killedAt} ms)`);
    await bed.startHost(victim);
    await waitForConsole(bed.consoleLog(r.placement?.r0 ?? 'a', CLUSTER, 'r0'), /(?:^RING TOKEN .*\n){3}/m, { from: readConsole(bed.consoleLog(r.placement?.r0 ?? 'a', CLUSTER, 'r0')).length, timeoutMs: 120_000 });
    await bed.vccr.protection.trigger(CLUSTER); // a fresh checkpoint for the next repetition
    await sleep(15_000);
  }
  await bed.vccr.protection.off(CLUSTER);
  return out;
}

/** Runs on a bed with host workers a, b and spare c and 3 taps (the section's bed). */
export async function protectSection(bed: TestBed, cfg: ProtectBenchConfig, say: (m: string) => void): Promise<ProtectBenchResult> {
  try {
    await bed.vccr.up(spec(bed));
    for (const vm of RING) await waitForConsole(bed.consoleLog(vm.host, CLUSTER, vm.name), /(?:^RING TOKEN .*\n){3}/m, { timeoutMs: 240_000 });
    await waitForConsole(bed.consoleLog(JOURNAL.host, CLUSTER, JOURNAL.name), /^JOURNAL WROTE seq=10$/m, { timeoutMs: 240_000 });
    const overhead = await overheadSection(bed, cfg, say);
    const chain = await chainSection(bed, cfg, say);
    const recovery = await recoverySection(bed, cfg, say);
    return { config: cfg, watch: BENCH_WATCH, overhead, chain, recovery };
  } finally {
    await bed.vccr.protection.off(CLUSTER).catch(() => undefined);
    await bed.vccr.down(CLUSTER, { kill: true }).catch(() => undefined);
  }
}

function derive(p: ProtectBenchResult, _cfg: ProtectBenchConfig, sink: MetricSink): void {
  const watch = `watch: check every ${p.watch.checkEverySeconds} s, grace ${p.watch.graceSeconds} s, pickup ${p.watch.pickupSeconds} s`;
  sink.headline('recovery_ms', 'recovery_ms (host dies → all VMs back)', metric(p.recovery.map((r) => r.recoveryMs), 'ms', `host worker and its QEMUs SIGKILLed → every VM running again from its checkpoint, the dead host's VMs on a spare (3 ring VMs + a disk VM on 2 hosts + spare; ${watch})`));
  sink.metric('recovery: detection (ms)', metric(p.recovery.map((r) => r.detectMs), 'ms', 'kill → the watch starts the recovery (polling, pickup timeout, grace, confirmation)'));
  sink.metric('recovery: restart (ms)', metric(p.recovery.map((r) => r.restartMs), 'ms', 'restart workflow: launch → last VM resumed'));
  const pct = (rates: number[]) => rates.map((r, i) => (1 - r / (p.overhead.unprotected[i] ?? Number.NaN)) * 100);
  sink.headline('protected_overhead_pct', 'protected_overhead_pct (every 30 s, stop)', metric(pct(p.overhead.stop), '%', `ring throughput lost with a stop-and-save checkpoint every ${p.config.everySec} s, per pair of ${p.config.windowSec}-s windows`));
  if (Array.isArray(p.overhead.live)) sink.metric('protected overhead, live (%)', metric(pct(p.overhead.live), '%', 'live checkpoints'));
  sink.metric('ring throughput unprotected (tokens/s)', metric(p.overhead.unprotected, 'tokens/s', '3-node ring, no delay'));
  sink.headline('chain_length_after_30', 'chain_length_after_30 (keep-last 3)', metric([p.chain.longestRunningChain], 'layers', `longest disk chain under a running VM after ${p.chain.checkpoints} scheduled checkpoints, keep-last 3 (top and base included)`, { op: '<=', value: 5 }));
  sink.metric('store / kept state bytes after 30', metric([p.chain.storeBytes / p.chain.keptStateBytes], '', `du of the cluster's store / state bytes of the ${p.chain.keptCheckpoints} kept checkpoints`));
}

export const protectBenchSection = defineSection<ProtectBenchConfig, ProtectBenchResult>({
  name: 'protect',
  about: 'continuous protection: recovery time after a host dies, guest throughput under a schedule, disk chain length',
  config: { full: PROTECT_FULL, quick: PROTECT_QUICK },
  hosts: () => ['a', 'b', 'c'],
  taps: () => 3,
  withReps: (c, reps) => ({ ...c, recoveryReps: reps }),
  run: (ctx, cfg) => protectSection(ctx.bed, cfg, say),
  derive,
});
