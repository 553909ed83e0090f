// The fault suite's shared ground: a cluster with a token ring (3 VMs) and a memory-heavy VM with a disk
// (so saves take a while and the freeze phase has work), on two host workers; a monitor of every VM's run
// state; the end-state checks every case makes; and the report RELIABILITY.md's figures come from.
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { TestBed, REPO_ROOT, guestImageDir } from '../../harness/testbed';
import { consoleSize, readConsole, ringErrors, ringTokens, waitForConsole } from '../../harness/console';
import { QmpClient } from '../../activities/qmp';
import { isAlive, sleep } from '../../node/proc';
import type { ClusterSpecInput } from '../../common/spec';
import { assertRingContinued } from '../helpers/ring-check';
import { assertJournalContinued, assertMemfillContinued } from '../helpers/continuation';

export const RUNS = Math.max(1, Number(process.env.VCCR_FAULT_RUNS ?? 5));
export const CLUSTER = 'f';
export const PAUSE_BOUND_S = 15;
export const RING = [
  { name: 'vm0', host: 'a' },
  { name: 'vm1', host: 'b' },
  { name: 'vm2', host: 'a' },
];
export const HEAVY = { name: 'heavy', host: 'b' };
/** Appends checksummed records to its disk: a restored disk that runs behind or ahead of memory shows. */
export const JOURNAL = { name: 'journal', host: 'a' };
export const HOME: Record<string, string> = {
  ...Object.fromEntries(RING.map((v) => [v.name, v.host])),
  [HEAVY.name]: HEAVY.host,
  [JOURNAL.name]: JOURNAL.host,
};
export const ALL_VMS = Object.keys(HOME).sort();

/** The phases of a checkpoint and of a restart, in order, as the `progress` query names them. */
// Stop mode v2: capture = pause barrier + freeze + saves started; save = saves joined, each VM resumed once saved.
export const CHECKPOINT_PHASES = ['prepare', 'capture', 'save', 'commit'];
export const RESTART_PHASES = ['validate', 'stop-old', 'launch', 'load', 'resume'];

export const random = (min: number, max: number) => min + Math.floor(Math.random() * (max - min + 1));

export function faultSpec(bed: TestBed, cluster = CLUSTER, store = bed.store): ClusterSpecInput {
  const image = guestImageDir();
  const ip = (i: number) => `10.77.0.${11 + i}`;
  const base = join(bed.dir, 'scratch-base.raw');
  if (!existsSync(base)) execFileSync('qemu-img', ['create', '-q', '-f', 'raw', base, '16M']);
  // Sparse; room for an hour of records at 10 a second.
  const journalBase = join(bed.dir, 'journal-base.raw');
  if (!existsSync(journalBase)) execFileSync('qemu-img', ['create', '-q', '-f', 'raw', journalBase, '256M']);
  return {
    cluster,
    store,
    pauseBoundSeconds: PAUSE_BOUND_S,
    hosts: { a: {}, b: {} },
    vms: [
      ...RING.map((vm, i) => ({
        name: vm.name,
        host: vm.host,
        memoryMiB: 128,
        boot: {
          kernel: join(image, 'vmlinuz'),
          initrd: join(image, 'initrd.img'),
          append: `console=ttyS0 quiet panic=-1 init_on_free=1 vccr.ip=${ip(i)}/24 vccr.run=ring vccr.args=--id,${i},--nodes,3,--listen,7000,--next,${ip((i + 1) % 3)}:7000,--delay-ms,20,--stall-sec,30`,
        },
        nics: [{ id: 'net0', tap: bed.network?.taps[i] ?? `tap${i}` }],
        ...(bed.network ? { netns: bed.network.name } : {}),
      })),
      {
        name: HEAVY.name,
        host: HEAVY.host,
        memoryMiB: 192,
        boot: {
          kernel: join(image, 'vmlinuz'),
          initrd: join(image, 'initrd.img'),
          append: 'console=ttyS0 quiet panic=-1 init_on_free=1 vccr.run=memfill vccr.args=--mb,96',
        },
        disks: [{ id: 'scratch', image: base, format: 'raw' }],
      },
      {
        name: JOURNAL.name,
        host: JOURNAL.host,
        memoryMiB: 96,
        boot: {
          kernel: join(image, 'vmlinuz'),
          initrd: join(image, 'initrd.img'),
          append: 'console=ttyS0 quiet panic=-1 init_on_free=1 vccr.run=journal vccr.args=write,--dev,/dev/vda,--delay-ms,100',
        },
        disks: [{ id: 'data', image: journalBase, format: 'raw' }],
      },
    ],
  };
}

export async function startFaultBed(options: { testHooks?: boolean } = {}): Promise<TestBed> {
  const bed = await TestBed.start({ hosts: ['a', 'b'], taps: 3, ...options });
  await bed.vccr.up(faultSpec(bed));
  for (const vm of RING) await waitForConsole(bed.consoleLog(vm.host, CLUSTER, vm.name), /(?:^RING TOKEN .*\n){5}/m, { timeoutMs: 180_000 });
  await waitForConsole(bed.consoleLog(HEAVY.host, CLUSTER, HEAVY.name), /^MEMFILL READY/m, { timeoutMs: 180_000 });
  await waitForConsole(bed.consoleLog(JOURNAL.host, CLUSTER, JOURNAL.name), /^JOURNAL WROTE seq=5$/m, { timeoutMs: 180_000 });
  return bed;
}

/** Starts a checkpoint of the fault cluster without waiting for it; returns the workflow id the client used. */
export async function startCheckpoint(bed: TestBed, checkpointId: string): Promise<string> {
  const started = await bed.vccr.checkpoint(CLUSTER, { checkpointId, noWait: true });
  assert.ok('workflowId' in started, 'the checkpoint was started, not awaited');
  return started.workflowId;
}

/**
 * Watches every VM's run state through its guard monitor (connect, query-status, close — the monitor
 * serves one client at a time and the pause guard may need it: a probe holds it for a few ms, and waits
 * its turn while the guard uses it) and keeps the longest pause. A VM whose QEMU is alive but whose
 * monitor does not answer is "unknown": that is no evidence it runs, so stop() fails the run.
 */
export class PauseMonitor {
  private pausedSince = new Map<string, number>();
  maxPausedMs = 0;
  readonly unknown: string[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(
    private readonly bed: TestBed,
    private readonly placement: () => Record<string, string>,
    private readonly cluster = CLUSTER,
  ) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      await Promise.all(Object.entries(this.placement()).map(([vm, host]) => this.probe(vm, host)));
      await sleep(200);
    }
  }

  private alive(host: string, vm: string): { guardSocket: string } | undefined {
    try {
      const record = this.bed.vmRecord(host, this.cluster, vm);
      return isAlive(record) ? record : undefined;
    } catch {
      return undefined; // no record: not launched, or forgotten after it was stopped
    }
  }

  private async probe(vm: string, host: string): Promise<void> {
    const record = this.alive(host, vm);
    let status: string | undefined;
    if (record) {
      try {
        const qmp = await QmpClient.connect(record.guardSocket, { connectTimeoutMs: 5000, commandTimeoutMs: 5000 });
        try {
          status = (await qmp.command('query-status')).status;
        } finally {
          await qmp.close();
        }
      } catch (err) {
        // Killed while we asked (or relaunched): not running, not paused. Alive and silent: unknown.
        if (this.alive(host, vm)) this.unknown.push(`${vm}@${host} at ${new Date().toISOString()}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    const now = Date.now();
    if (status === 'paused' || status === 'postmigrate' || status === 'finish-migrate') {
      const since = this.pausedSince.get(vm) ?? now;
      this.pausedSince.set(vm, since);
      this.maxPausedMs = Math.max(this.maxPausedMs, now - since);
    } else {
      this.pausedSince.delete(vm);
    }
  }

  /** Ends the watch; fails if any VM's state could not be read while its QEMU was alive. */
  async stop(): Promise<number> {
    this.running = false;
    await this.loop;
    assert.deepEqual(this.unknown, [], 'every live VM answered the pause monitor');
    return this.maxPausedMs;
  }
}

/** Waits until every VM runs again (a guard may still be about to resume one), then checks it thoroughly. */
export async function assertClusterHealthy(bed: TestBed, placement: Record<string, string> = HOME, cluster = CLUSTER): Promise<void> {
  const deadline = Date.now() + (PAUSE_BOUND_S + 10) * 1000;
  let statuses: string[] = [];
  for (;;) {
    const status = await bed.vccr.status(cluster);
    statuses = status.vms.map((v) => `${v.name}@${v.host}:${v.alive ? (v.qmpStatus ?? v.error ?? '?') : 'dead'}`);
    if (status.vms.length === ALL_VMS.length && status.vms.every((v) => v.alive && v.qmpStatus === 'running')) break;
    if (Date.now() > deadline) assert.fail(`not every VM runs: ${statuses.join(', ')}`);
    await sleep(500);
  }
  // The running cluster lost nothing: the ring goes on without error, memfill's self-check holds. The
  // consoles are watched together: each only has to show fresh progress.
  const ring = RING.map(async (vm) => {
    const path = bed.consoleLog(placement[vm.name] ?? vm.host, cluster, vm.name);
    const from = consoleSize(path); // a byte offset (readConsole drops the \r of every line)
    await waitForConsole(path, /(?:^RING TOKEN .*\n){3}/m, { from, timeoutMs: 60_000 });
    const text = readConsole(path);
    const since = text.lastIndexOf('=== vccr:');
    assert.deepEqual(ringErrors(text.slice(since)), [], `${vm.name}: ring errors`);
    assert.ok(ringTokens(text.slice(since)).length > 0);
  });
  const heavy = (async () => {
    const path = bed.consoleLog(placement[HEAVY.name] ?? HEAVY.host, cluster, HEAVY.name);
    await waitForConsole(path, /^MEMFILL ALIVE/m, { from: consoleSize(path), timeoutMs: 60_000 });
    assert.doesNotMatch(readConsole(path).slice(readConsole(path).lastIndexOf('=== vccr:')), /^MEMFILL ERROR/m);
  })();
  const journal = (async () => {
    const path = bed.consoleLog(placement[JOURNAL.name] ?? JOURNAL.host, cluster, JOURNAL.name);
    await waitForConsole(path, /(?:^JOURNAL WROTE .*\n){3}/m, { from: consoleSize(path), timeoutMs: 60_000 });
    assert.doesNotMatch(readConsole(path).slice(readConsole(path).lastIndexOf('=== vccr:')), /^JOURNAL ERROR/m);
  })();
  await Promise.all([...ring, heavy, journal]);
}

/**
 * The store holds only committed checkpoints (each with all its files, and every one listed here verifies
 * against its checksums) and failure records; nothing partial.
 */
export async function assertStoreClean(bed: TestBed, verifyIds: string[], store = bed.store, cluster = CLUSTER): Promise<void> {
  const dir = join(store, cluster);
  for (const entry of readdirSync(dir)) {
    if (entry.startsWith('_')) continue;
    assert.ok(existsSync(join(dir, entry, 'manifest.json')), `checkpoint folder ${entry} has a committed manifest`);
    const partials = readdirSync(join(dir, entry)).filter((f) => f.endsWith('.partial') || f.startsWith('.'));
    assert.deepEqual(partials, [], `no partial files in ${entry}`);
  }
  for (const id of verifyIds) {
    const report = await bed.vccr.checkpoints.verify(cluster, id, store);
    assert.equal(report.ok, true, `checkpoint ${id}: ${report.problems.join('; ')}`);
  }
}

export interface FaultRecord {
  suite: string;
  case: string;
  run: number;
  outcome: string;
  maxPausedMs: number;
  ms: number;
  detail: string;
  ok: boolean;
  /** Runs the case makes, if not VCCR_FAULT_RUNS (a race case forces its interleaving once). */
  asked?: number;
}

/** Appends one run's outcome to the fault report (RELIABILITY.md's figures are made from it). */
export function report(r: FaultRecord): void {
  const path = process.env.VCCR_FAULT_REPORT ?? join(REPO_ROOT, '.cache', 'fault-report.jsonl');
  mkdirSync(join(path, '..'), { recursive: true });
  appendFileSync(path, `${JSON.stringify({ at: new Date().toISOString(), ...r })}\n`);
}

/**
 * Restores the fault cluster from a checkpoint (killing what runs) and proves the cut: every ring node
 * continues from its token, the journal from its record, memfill from its counter, with nothing lost.
 */
export async function restoreAndVerify(bed: TestBed, checkpointId: string): Promise<void> {
  await bed.vccr.restart(CLUSTER, { checkpointId, force: true });
  await assertContinuedFrom(bed, checkpointId);
}

/** After a restart from `checkpointId`: the ring, the journal and memfill carry on exactly from it. */
export async function assertContinuedFrom(bed: TestBed, checkpointId: string): Promise<void> {
  const { manifest } = await bed.vccr.checkpoints.show(CLUSTER, checkpointId);
  await Promise.all([
    assertRingContinued(bed, CLUSTER, manifest, HOME, 5, RING.map((v) => v.name)),
    assertJournalContinued(bed.consoleLog(JOURNAL.host, CLUSTER, JOURNAL.name), manifest, JOURNAL.name),
    assertMemfillContinued(bed, CLUSTER, manifest, HEAVY.name, HEAVY.host),
  ]);
}

/** Waits until the worker `target` ('controller' or a host id) reached a test hook point (activities/test-hooks.ts). */
export async function waitForHook(bed: TestBed, target: string, point: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!bed.hooksReached(target).some((r) => r.point === point)) {
    if (Date.now() > deadline) throw new Error(`${target} never reached hook ${point}`);
    await sleep(20);
  }
}

/** Something else takes the space of a store: leaves about 20 MiB free (retrying smaller while a write goes on). */
export function takeTheSpace(store: string, ballast: string): void {
  for (let leave = 20; ; leave += 8) {
    const free = Number(execFileSync('df', ['--output=avail', '-B1', store], { encoding: 'utf8' }).split('\n')[1]);
    const size = Math.max(1, free - leave * 1024 * 1024);
    if (spawnSync('fallocate', ['-l', String(size), ballast]).status === 0) return;
    assert.ok(leave < 200, 'could not take the space away');
  }
}
