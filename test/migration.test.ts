// The migration layer (activities/host/migration) against real QEMU 7.2 and the real test guest, without
// Temporal: stop-mode save and load, cancellation, live (background-snapshot) checkpoints restored into a
// new QEMU, and what happens to a running guest when a live snapshot is cancelled or fails.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chownSync, createReadStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test as nodeTest, type TestContext } from 'node:test';
import {
  cancelMigration,
  configureMigration,
  loadFromStream,
  MigrationError,
  pauseVm,
  prepareBackgroundSnapshot,
  resumeVm,
  saveToStream,
  startBackgroundSnapshot,
  type BackgroundSnapshot,
} from '../activities/host/migration';
import { sleep } from '../node/proc';
import { GuestVm, type GuestVmOptions } from '../harness/guest-vm';
import { janitor } from '../harness/janitor';
import { PrivateNetwork } from '../harness/netns';
import { Tmpfs } from '../harness/tmpfs';
import { ringConnections, ringErrors, ringTokens } from '../harness/console';

function test(name: string, fn: (t: TestContext) => Promise<void>): void {
  nodeTest(name, { timeout: 300_000 }, fn);
}

/**
 * A folder for one test. At the end, whatever happened: every VM started in it is killed, then the
 * deferred clean-ups run (last first: unmount, remove the network), then the folder is removed.
 */
class Scope {
  readonly dir: string;
  private readonly vms: GuestVm[] = [];
  private readonly cleanups: Array<() => void> = [];

  constructor(t: TestContext) {
    this.dir = mkdtempSync(join(tmpdir(), 'vccr-mig-'));
    janitor.trackPath(this.dir);
    t.after(async () => {
      await Promise.all(this.vms.map((vm) => vm.kill()));
      for (const cleanup of this.cleanups.reverse()) cleanup();
      rmSync(this.dir, { recursive: true, force: true });
      janitor.untrackPath(this.dir);
    });
  }

  defer(cleanup: () => void): void {
    this.cleanups.push(cleanup);
  }

  async start(options: Omit<GuestVmOptions, 'dir'>): Promise<GuestVm> {
    const vm = await GuestVm.start({ ...options, dir: this.dir });
    this.vms.push(vm);
    return vm;
  }

  path(name: string): string {
    return join(this.dir, name);
  }
}

// memfill: every 100th page rewrite prints ALIVE; a page that changed behind its back prints ERROR.
const memfill = (fillMiB: number) => `vccr.run=memfill vccr.args=--mb,${fillMiB},--delay-ms,2`;

async function bootMemfill(scope: Scope, name: string, memoryMiB: number, fillMiB: number, extra: Partial<GuestVmOptions> = {}): Promise<GuestVm> {
  const vm = await scope.start({ name, memoryMiB, append: memfill(fillMiB), ...extra });
  await vm.waitForConsole(/^MEMFILL ALIVE n=\d+$/m);
  return vm;
}

const aliveCounts = (text: string): number[] => [...text.matchAll(/MEMFILL ALIVE n=(\d+)/g)].map((m) => Number(m[1]));
const lastAlive = (vm: GuestVm): number => aliveCounts(vm.console()).at(-1) ?? 0;

/** Waits until the guest printed `steps` more ALIVE lines than `from`: it is running (not frozen). */
async function runsOn(vm: GuestVm, from: number, steps = 3): Promise<void> {
  await vm.waitForConsole(new RegExp(`^MEMFILL ALIVE n=${from + steps * 100}$`, 'm'), 0, 60_000);
}

/**
 * The console up to the checkpoint followed by the restored guest's console must read as one run:
 * ALIVE counts in steps of 100 without gap or repeat, and no ERROR. (A line cut by the pause is
 * completed by the restored guest, so the two texts are joined byte for byte.)
 */
async function assertMemfillContinues(before: string, restored: GuestVm): Promise<void> {
  const atCheckpoint = aliveCounts(before).at(-1) ?? 0;
  await restored.waitForConsole(new RegExp(`MEMFILL ALIVE n=${atCheckpoint + 300}\\b`), 0, 120_000);
  const joined = before + restored.console();
  assert.doesNotMatch(joined, /MEMFILL (ERROR|FATAL)/);
  const counts = aliveCounts(joined);
  counts.forEach((n, i) => assert.equal(n, (i + 1) * 100, `ALIVE #${i + 1} continues the run (got ${counts.join(',')})`));
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function restore(scope: Scope, name: string, memoryMiB: number, file: string, extra: Partial<GuestVmOptions> = {}): Promise<GuestVm> {
  const vm = await scope.start({ name, memoryMiB, append: '', incoming: true, consoleName: `${name}.restored.console`, ...extra });
  await loadFromStream(vm.qmp, { vm: name, socketPath: scope.path(`${name}.load.sock`), file });
  assert.equal((await vm.qmp.command('query-status')).status, 'paused', '-S keeps a loaded VM paused');
  assert.equal((await resumeVm(vm.qmp, name)).source, 'event');
  return vm;
}

async function rejection(promise: Promise<unknown>): Promise<MigrationError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof MigrationError, `a MigrationError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a MigrationError');
}

test('stop mode: a paused guest saved through the layer loads into a new QEMU and carries on; cont works from postmigrate', async (t) => {
  const scope = new Scope(t);
  const src = await bootMemfill(scope, 'src', 256, 96);
  const paused = await pauseVm(src.qmp, 'src');
  assert.equal(paused.source, 'event');
  const offset = src.consoleSize();
  const file = scope.path('src.state');
  const saved = await saveToStream(src.qmp, { vm: 'src', socketPath: scope.path('save.sock'), file });
  assert.equal(saved.end.status, 'completed');
  assert.equal(saved.end.source, 'event');
  assert.ok(saved.end.atMs >= paused.atMs);
  assert.equal(saved.sha256, await sha256Of(file));
  assert.equal((await src.qmp.command('query-status')).status, 'postmigrate');
  assert.equal((await pauseVm(src.qmp, 'src')).source, 'already', 'stop on a stopped VM: no STOP event');
  await assert.rejects(saveToStream(src.qmp, { vm: 'src', socketPath: scope.path('save2.sock'), file: scope.path('again.state') }), /postmigrate/);

  // QEMU 7.2 lets a VM whose save completed run again (what stop mode's resume does).
  const alive = lastAlive(src);
  assert.equal((await resumeVm(src.qmp, 'src')).source, 'event');
  await runsOn(src, alive, 1);
  await src.kill();

  const dst = await restore(scope, 'src', 256, file);
  await assertMemfillContinues(src.console(0, offset), dst);

  // A missing file is refused before QEMU listens; a truncated one ends the load (and QEMU 7.2 with it).
  const bad = await scope.start({ name: 'bad', memoryMiB: 256, append: '', incoming: true });
  const missing = await rejection(loadFromStream(bad.qmp, { vm: 'bad', socketPath: scope.path('bad.sock'), file: scope.path('missing.state') }));
  assert.equal(missing.kind, 'receiver-failed');
  assert.equal((await bad.qmp.command('query-status')).status, 'inmigrate', 'untouched');
  const truncated = scope.path('truncated.state');
  writeFileSync(truncated, readFileSync(file).subarray(0, 8 << 20));
  const failed = await rejection(loadFromStream(bad.qmp, { vm: 'bad', socketPath: scope.path('bad.sock'), file: truncated }));
  assert.ok(failed.kind === 'failed' || failed.kind === 'qemu-exited', `${failed.kind}: ${failed.message}`);
  t.diagnostic(`truncated state file: ${failed.message}`);
});

test('cancel: a no-op when idle; cancels an active save and returns only once QEMU says cancelled; the VM stays paused', async (t) => {
  const scope = new Scope(t);
  const vm = await bootMemfill(scope, 'vm', 256, 96);
  await pauseVm(vm.qmp, 'vm');
  assert.deepEqual(await cancelMigration(vm.qmp, 'vm'), { before: undefined });

  // A save throttled to 4 MiB/s is cancelled by its signal once it runs.
  const abort = new AbortController();
  const file = scope.path('vm.state');
  const save = saveToStream(vm.qmp, { vm: 'vm', socketPath: scope.path('save.sock'), file, maxBandwidth: 4 << 20, signal: abort.signal });
  while ((await vm.qmp.command('query-migrate')).status !== 'active') await sleep(20);
  abort.abort();
  const error = await rejection(save);
  assert.equal(error.kind, 'cancelled');
  assert.equal((await vm.qmp.command('query-migrate')).status, 'cancelled', 'over, not still cancelling');
  assert.equal(existsSync(file), false, 'no partial state file');
  assert.equal((await vm.qmp.command('query-status')).status, 'paused');

  // A migration started by hand (as a crashed worker would leave it) is cancelled and waited for.
  const sink = await drainingSink(scope.path('raw.sock'));
  await configureMigration(vm.qmp, 'vm', { maxBandwidth: 4 << 20, backgroundSnapshot: false });
  await vm.qmp.command('migrate', { uri: `unix:${scope.path('raw.sock')}` });
  const outcome = await cancelMigration(vm.qmp, 'vm');
  assert.ok(outcome.before === 'setup' || outcome.before === 'active', `was running (${outcome.before})`);
  assert.equal(outcome.end?.status, 'cancelled');
  assert.equal((await vm.qmp.command('query-migrate')).status, 'cancelled');
  sink.close();

  // A state file is never overwritten.
  const existing = scope.path('existing.state');
  writeFileSync(existing, 'an earlier attempt');
  const refused = await rejection(saveToStream(vm.qmp, { vm: 'vm', socketPath: scope.path('save3.sock'), file: existing }));
  assert.equal(refused.kind, 'wrong-state');
  assert.equal(readFileSync(existing, 'utf8'), 'an earlier attempt');

  // Nothing is left behind: the next save goes through.
  const saved = await saveToStream(vm.qmp, { vm: 'vm', socketPath: scope.path('save4.sock'), file });
  assert.equal(saved.sha256, await sha256Of(file));
});

/** A unix socket that reads and discards one connection. */
async function drainingSink(path: string): Promise<{ close: () => void }> {
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    socket.resume();
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/** The live sequence: prepare (VM running), pause, freeze the disk (a new overlay while paused), snapshot at `at`. */
async function liveSnapshot(scope: Scope, vm: GuestVm, file: string, at?: number): Promise<{ snap: BackgroundSnapshot; offset: number; stoppedAt: number }> {
  const name = vm.options.name;
  const prepared = await prepareBackgroundSnapshot(vm.qmp, { vm: name, socketPath: scope.path(`${name}.snap.sock`), file });
  const paused = await pauseVm(vm.qmp, name);
  const offset = vm.consoleSize();
  if (vm.options.disk) {
    await vm.qmp.command('blockdev-snapshot-sync', { device: 'drive-d0', 'snapshot-file': scope.path(`${name}.after.qcow2`), format: 'qcow2' });
  }
  const snap = await prepared.start(at);
  return { snap, offset, stoppedAt: paused.atMs };
}

test('live: a paused guest with a frozen disk is snapshotted in the background; QEMU resumes it; the file restores exactly', async (t) => {
  const scope = new Scope(t);
  const base = scope.path('base.raw');
  execFileSync('qemu-img', ['create', '-q', '-f', 'raw', base, '16M']);
  const layer = scope.path('vm.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', base, layer]);
  const vm = await bootMemfill(scope, 'vm', 512, 256, { disk: layer });
  const file = scope.path('vm.state');
  const { snap, offset, stoppedAt } = await liveSnapshot(scope, vm, file);

  assert.equal(snap.times.stoppedAtMs, undefined, 'QEMU does not stop a VM we paused a second time');
  assert.ok(stoppedAt < snap.times.resumedAtMs, 'STOP precedes RESUME');
  assert.ok(snap.times.setupAtMs !== undefined && snap.times.activeAtMs !== undefined);
  assert.ok(snap.times.setupAtMs <= snap.times.activeAtMs && snap.times.activeAtMs <= snap.times.resumedAtMs);
  assert.equal((await vm.qmp.command('query-status')).status, 'running', 'QEMU 7.2 resumed the VM we had paused');
  const atResume = lastAlive(vm);
  const progress = await snap.ramProgress();
  assert.ok(progress && progress.total >= 512 * 1024 * 1024 && progress.remaining <= progress.total, `QEMU's view: ${JSON.stringify(progress)}`);

  const result = await snap.done;
  assert.equal(result.end.status, 'completed');
  assert.equal(result.sha256, await sha256Of(file));
  const caps = await vm.qmp.command('query-migrate-capabilities');
  assert.equal(caps.find((c) => c.capability === 'background-snapshot')?.state, false, 'switched off again: a later migrate is a plain one');
  assert.ok(snap.bytes() === result.size, 'every byte QEMU sent is in the file');
  await runsOn(vm, atResume, 2);
  t.diagnostic(`STOP→RESUME ${(snap.times.resumedAtMs - stoppedAt).toFixed(1)} ms; ${result.size} bytes written while the guest ran`);
  await vm.kill();

  const restoredLayer = scope.path('vm.restored.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', layer, restoredLayer]);
  const restored = await restore(scope, 'vm', 512, file, { disk: restoredLayer });
  await assertMemfillContinues(vm.console(0, offset), restored);
});

test('live: cancelled while the guest runs: it keeps running, the file is gone, a new snapshot works', async (t) => {
  const scope = new Scope(t);
  const vm = await bootMemfill(scope, 'vm', 512, 384);
  const file = scope.path('vm.state');
  const unused = await prepareBackgroundSnapshot(vm.qmp, { vm: 'vm', socketPath: scope.path('unused.sock'), file });
  assert.equal(existsSync(file), true, 'prepared: the file exists, empty');
  await unused.discard();
  assert.equal(existsSync(file), false, 'discarded before the start: no file');
  await assert.rejects(unused.start(), /already started or discarded/);

  const { snap } = await liveSnapshot(scope, vm, file);
  const before = lastAlive(vm);
  await snap.cancel();
  assert.equal((await rejection(snap.done)).kind, 'cancelled');
  assert.equal(existsSync(file), false);
  assert.deepEqual(readdirSync(scope.dir).filter((f) => f.endsWith('.sock') || f.endsWith('.rx')), [], 'no socket left');
  assert.equal((await vm.qmp.command('query-migrate')).status, 'completed', 'cancelling drains the stream: QEMU completes');
  await runsOn(vm, before, 3);

  const again = await liveSnapshot(scope, vm, file);
  assert.equal((await again.snap.done).end.status, 'completed');
  await runsOn(vm, lastAlive(vm), 2);
});

test('live: the store fills up during the write: receiver-failed, the guest keeps running, no file', async (t) => {
  const scope = new Scope(t);
  const store = Tmpfs.mount(scope.path('store'), 48);
  scope.defer(() => store.unmount());
  const vm = await bootMemfill(scope, 'vm', 256, 128);
  const file = join(store.path, 'vm.state');
  const { snap } = await liveSnapshot(scope, vm, file);
  const before = lastAlive(vm);
  const error = await rejection(snap.done);
  assert.equal(error.kind, 'receiver-failed');
  assert.match(error.message, /ENOSPC/);
  assert.equal(existsSync(file), false);
  assert.equal((await vm.qmp.command('query-status')).status, 'running');
  await runsOn(vm, before, 3);
});

test('live: QEMU killed during the write: qemu-exited, no file', async (t) => {
  const scope = new Scope(t);
  const vm = await bootMemfill(scope, 'vm', 512, 384);
  const file = scope.path('vm.state');
  const { snap } = await liveSnapshot(scope, vm, file);
  let settled = false;
  snap.done.then(() => (settled = true), () => (settled = true));
  while (snap.bytes() < 16 << 20) await new Promise((r) => setImmediate(r));
  vm.signal('SIGSTOP'); // freeze it mid-write, so the kill cannot race the end of the write
  await sleep(100);
  assert.equal(settled, false, 'still writing when killed');
  await vm.kill();
  const error = await rejection(snap.done);
  assert.equal(error.kind, 'qemu-exited');
  assert.equal(existsSync(file), false);
});

test('live: a QEMU that may not use userfaultfd refuses clearly, before touching the VM', async (t) => {
  const scope = new Scope(t);
  const nobody = { uid: 65534, gid: 65534 };
  chownSync(scope.dir, nobody.uid, nobody.gid);
  const vm = await scope.start({ name: 'vm', memoryMiB: 64, append: 'vccr.run=idle', user: nobody });
  await pauseVm(vm.qmp, 'vm');
  const refused = await rejection(configureMigration(vm.qmp, 'vm', { backgroundSnapshot: true }));
  assert.equal(refused.kind, 'unsupported');
  assert.equal(refused.qemuSaid, 'Background-snapshot is not supported by host kernel');
  assert.match(refused.message, /userfaultfd/);
  const file = scope.path('vm.state');
  const error = await rejection(startBackgroundSnapshot(vm.qmp, { vm: 'vm', socketPath: scope.path('snap.sock'), file }));
  assert.equal(error.kind, 'unsupported');
  assert.equal(existsSync(file), false);
  assert.equal((await vm.qmp.command('query-status')).status, 'paused', 'untouched');
});

test('QEMU 7.2 quirk: migrate_cancel of a background snapshot leaves the guest frozen (so the layer drains instead)', async (t) => {
  const scope = new Scope(t);
  const vm = await bootMemfill(scope, 'vm', 512, 384);
  await configureMigration(vm.qmp, 'vm', { backgroundSnapshot: true });
  const socketPath = scope.path('raw.sock');
  const reader = await throttledReader(socketPath, 64 << 20);
  scope.defer(() => reader.close());
  await vm.qmp.command('migrate', { uri: `unix:${socketPath}` });
  while (reader.bytes() < 16 << 20) await sleep(10);
  assert.equal((await rejection(cancelMigration(vm.qmp, 'vm'))).kind, 'wrong-state', 'the layer refuses');
  const alive = lastAlive(vm);
  await vm.qmp.command('migrate_cancel', undefined, { timeoutMs: 5000 });
  // From here QMP itself may hang (a vCPU that faults while holding QEMU's big lock blocks the main
  // loop): only the console and /proc are asked.
  await sleep(3000); // ALIVE comes every ~0.3 s in a running guest
  const frozenAt = lastAlive(vm);
  await sleep(3000);
  assert.equal(lastAlive(vm), frozenAt, `the guest made no progress (ALIVE ${alive} at the cancel)`);
  assert.ok(threadsInUserfault(vm.pid) > 0, 'a QEMU thread waits in handle_userfault');
});

/** A unix socket that reads one connection at about `bytesPerSecond`. */
async function throttledReader(path: string, bytesPerSecond: number): Promise<{ bytes: () => number; close: () => void }> {
  let bytes = 0;
  let socket: Socket | undefined;
  const started = Date.now();
  const server = createServer((s) => {
    socket = s;
    s.on('error', () => undefined);
    s.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      const ahead = bytes / bytesPerSecond - (Date.now() - started) / 1000;
      if (ahead > 0) {
        s.pause();
        setTimeout(() => s.resume(), ahead * 1000);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    bytes: () => bytes,
    close: () => {
      socket?.destroy();
      server.close();
    },
  };
}

function threadsInUserfault(pid: number): number {
  return readdirSync(`/proc/${pid}/task`).filter((tid) => readFileSync(`/proc/${pid}/task/${tid}/wchan`, 'utf8').includes('handle_userfault')).length;
}

test('live: a ring guest pair snapshotted at the same instant restores, and the ring carries on', async (t) => {
  const scope = new Scope(t);
  const net = PrivateNetwork.create(2, 'vccr-mig');
  const nodes = [0, 1].map((i) => {
    const next = `10.77.0.${((i + 1) % 2) + 1}:7000`;
    const args = ['--id', `${i}`, '--nodes', '2', '--listen', '7000', '--next', next, '--delay-ms', '20'].join(',');
    return {
      name: `ring${i}`,
      memoryMiB: 192,
      append: `vccr.ip=10.77.0.${i + 1}/24 vccr.run=ring vccr.args=${args}`,
      nic: { netns: net.name, tap: net.taps[i] ?? '', mac: `52:54:00:77:00:0${i + 1}` },
    };
  });
  scope.defer(() => net.destroy());
  const vms = await Promise.all(nodes.map((n) => scope.start(n)));
  await Promise.all(vms.map((vm) => vm.waitForConsole(/^RING TOKEN id=\d+ value=(?:[2-9]\d|\d{3,})$/m)));

  const at = Date.now() + 200;
  const snaps = await Promise.all(vms.map((vm) => liveSnapshot(scope, vm, scope.path(`${vm.options.name}.state`), at)));
  const lastStop = Math.max(...snaps.map((s) => s.stoppedAt));
  const firstResume = Math.min(...snaps.map((s) => s.snap.times.resumedAtMs));
  assert.ok(lastStop < firstResume, `every STOP precedes every RESUME (${lastStop} < ${firstResume}): a consistent cut`);
  await Promise.all(snaps.map((s) => s.snap.done));
  await Promise.all(vms.map((vm) => vm.kill()));

  const restored = await Promise.all(nodes.map((n) => restore(scope, n.name, n.memoryMiB, scope.path(`${n.name}.state`), { nic: n.nic })));
  await Promise.all(
    restored.map(async (vm, i) => {
      const before = vms[i]?.console(0, snaps[i]?.offset) ?? '';
      const last = ringTokens(before).at(-1)?.value ?? 0n;
      await vm.waitForConsole(/(?:^RING TOKEN .*\n){10}/m, 0, 60_000);
      const after = vm.console();
      assert.deepEqual(ringErrors(after), []);
      assert.deepEqual(ringConnections(after), [], 'the same TCP connections');
      assert.equal(ringTokens(after)[0]?.value, last + 2n, `${vm.options.name} continues from its token at the cut`);
    }),
  );
  await Promise.all(restored.map((vm) => vm.kill()));
});
