// Live snapshots: a `background-snapshot` migration into our StateReceiver. QEMU stops the VM (if it
// runs), saves its device state to a buffer, write-protects guest RAM with userfaultfd and — in 7.2
// unconditionally, even when we had paused the VM — resumes it; RAM is then written while the guest
// runs (a page the guest writes is copied out first), the device state last.
//
// Measured on QEMU 7.2 (test/migration.test.ts, bench/live-lab.ts): a VM we paused gets no second STOP;
// the events are MIGRATION setup → active → RESUME → … → completed, and query-status says `running`
// from RESUME on.
import { rm } from 'node:fs/promises';
import type { QmpClient, QmpEvent } from '../../qmp';
import { hostNow, qemuEventTime } from '../clock';
import type { TransferResult } from '../transfer';
import { configureMigration, isActiveStatus, migrationInfo, MigrationWatch, qmpFailure, UNLIMITED_BANDWIDTH, type MigrationEnd } from './control';
import { MigrationError, messageOf } from './errors';
import { waitUntil } from './runstate';
import { inProcessSink, type SinkFactory, type SnapshotSink } from './sink';
import { endError, settled, type Settled } from './stream';

export interface BackgroundSnapshotOptions {
  vm: string;
  /** The unix socket QEMU writes to; the receiver listens on `<socketPath>.rx` behind a relay. */
  socketPath: string;
  /** The state file, created exclusively; removed again unless the snapshot completes. */
  file: string;
  /** Bytes QEMU has sent so far, about once a second. */
  onProgress?: (bytes: number) => void;
  /** How long QEMU may take to resume the guest after `migrate` (default 30 s). */
  resumeTimeoutMs?: number;
  /** Where the stream goes (default: a relay and receiver in this process). */
  sink?: SinkFactory;
}

export interface SnapshotTimes {
  /** Epoch ms (host clock) when `migrate` was sent. */
  migrateAtMs: number;
  /** QEMU's STOP timestamp when QEMU stopped a running VM itself; undefined when we had paused it. */
  stoppedAtMs: number | undefined;
  /** QEMU's MIGRATION setup/active timestamps: setup prepares RAM tracking (populates pages). */
  setupAtMs: number | undefined;
  activeAtMs: number | undefined;
  /** QEMU's RESUME timestamp: the snapshot instant is before this; the guest runs from here on. */
  resumedAtMs: number;
}

export interface SnapshotResult extends TransferResult {
  /** How QEMU ended it: its timestamp, `downtime`, `total-time`, RAM counters. */
  end: MigrationEnd;
}

export interface BackgroundSnapshot {
  readonly vm: string;
  readonly times: SnapshotTimes;
  /** The background write: resolves once the file is complete and durable; rejects with MigrationError. */
  readonly done: Promise<SnapshotResult>;
  /** Bytes QEMU has sent so far. */
  bytes(): number;
  /** QEMU's view of the write: guest RAM bytes in total, still to visit, sent (query-migrate `ram`). */
  ramProgress(): Promise<RamProgress | undefined>;
  /**
   * Abandons the snapshot unless `done` has already resolved: the guest keeps running, the file is
   * removed, `done` rejects with kind 'cancelled'. Resolves once QEMU is done with it.
   */
  cancel(): Promise<void>;
}

export interface RamProgress {
  total: number;
  remaining: number;
  transferred: number;
}

export interface PreparedSnapshot {
  readonly vm: string;
  /**
   * Sends `migrate` at `at` (epoch ms; default at once) and resolves once QEMU has resumed the guest
   * (RESUME), with the times QEMU reported. Call it once.
   */
  start(at?: number): Promise<BackgroundSnapshot>;
  /** Gives up before start(): removes the (empty) file and the sockets. */
  discard(): Promise<void>;
}

/**
 * Everything that can be done before the pause: checks, capabilities, the receiver and the relay. Fails
 * (MigrationError) without touching the VM if background snapshots are unsupported here ('unsupported')
 * or another migration is active ('wrong-state').
 */
export async function prepareBackgroundSnapshot(qmp: QmpClient, options: BackgroundSnapshotOptions): Promise<PreparedSnapshot> {
  const { vm } = options;
  await requireSnapshotable(qmp, vm);
  await configureMigration(qmp, vm, { events: true, backgroundSnapshot: true, maxBandwidth: UNLIMITED_BANDWIDTH });
  const sink = await (options.sink ?? inProcessSink)(vm, options.socketPath, options.file).catch(async (err: unknown) => {
    await switchOff({ qmp, vm });
    throw err;
  });
  const parts: Parts = { qmp, vm, options, sink, watch: undefined, end: undefined };
  let used = false;
  const claim = (): void => {
    if (used) throw new MigrationError('this snapshot was already started or discarded', { vm, kind: 'wrong-state' });
    used = true;
  };
  return {
    vm,
    start: async (at) => {
      claim();
      return launch(parts, at);
    },
    discard: async () => {
      if (used) return;
      used = true;
      await abandon(parts, new Error('snapshot discarded before it started'));
    },
  };
}

/** prepareBackgroundSnapshot(), then start() at `options.at`. */
export async function startBackgroundSnapshot(qmp: QmpClient, options: BackgroundSnapshotOptions & { at?: number }): Promise<BackgroundSnapshot> {
  const prepared = await prepareBackgroundSnapshot(qmp, options);
  return prepared.start(options.at);
}

async function launch(parts: Parts, at: number | undefined): Promise<BackgroundSnapshot> {
  const { qmp, vm, options } = parts;
  // Subscribed only now, so the STOP of our own pause (before this) is not taken for QEMU's.
  const events = qmp.events({ names: ['STOP', 'RESUME', 'MIGRATION'] });
  const watch = new MigrationWatch(qmp, vm);
  parts.watch = watch;
  try {
    await waitUntil(at);
    const migrateAtMs = hostNow();
    await qmp.command('migrate', { uri: `unix:${options.socketPath}` }).catch((err: unknown) => {
      throw qmpFailure(vm, 'QEMU refused to start the snapshot', err);
    });
    const end = settled(watch.end());
    parts.end = end;
    const times = await untilResumed(events, { vm, migrateAtMs, timeoutMs: options.resumeTimeoutMs ?? 30_000 });
    if (times === 'ended') {
      const verdict = await end; // with QEMU's error-desc
      throw verdict.ok ? endError(vm, 'snapshot ended before the guest was resumed:', verdict.value) : verdict.error;
    }
    return handle(parts, times);
  } catch (err) {
    await abandon(parts, err);
    throw await withRunState(qmp, err);
  } finally {
    void events.return();
  }
}

async function requireSnapshotable(qmp: QmpClient, vm: string): Promise<void> {
  try {
    const { status } = await qmp.command('query-status');
    if (status !== 'running' && status !== 'paused') {
      throw new MigrationError(`it is ${status}; a live snapshot needs it running or paused`, { vm, kind: 'wrong-state', runState: status });
    }
    const { status: migration } = await qmp.command('query-migrate');
    if (isActiveStatus(migration)) throw new MigrationError(`a migration is already ${migration}`, { vm, kind: 'wrong-state', status: migration });
  } catch (err) {
    throw qmpFailure(vm, 'could not check the VM before the snapshot', err);
  }
}

interface ResumeWait {
  vm: string;
  migrateAtMs: number;
  timeoutMs: number;
}

/** Reads QEMU's events until RESUME ('ended': the migration failed or was cancelled before it). */
async function untilResumed(events: AsyncIterator<QmpEvent<'STOP' | 'RESUME' | 'MIGRATION'>>, wait: ResumeWait): Promise<SnapshotTimes | 'ended'> {
  const times: Omit<SnapshotTimes, 'resumedAtMs'> = { migrateAtMs: wait.migrateAtMs, stoppedAtMs: undefined, setupAtMs: undefined, activeAtMs: undefined };
  const deadline = Date.now() + wait.timeoutMs;
  for (;;) {
    const next = await withDeadline(events.next(), deadline);
    if (next === 'timeout') throw new MigrationError(`QEMU did not resume the guest within ${wait.timeoutMs} ms of the snapshot start`, { vm: wait.vm, kind: 'timeout' });
    if (next.done) throw new MigrationError('QEMU exited while starting the snapshot', { vm: wait.vm, kind: 'qemu-exited' });
    const event = next.value;
    if (event.event === 'RESUME') return { ...times, resumedAtMs: qemuEventTime(event) };
    if (event.event === 'STOP') times.stoppedAtMs = qemuEventTime(event);
    else if (event.event === 'MIGRATION' && event.data.status === 'setup') times.setupAtMs = qemuEventTime(event);
    else if (event.event === 'MIGRATION' && event.data.status === 'active') times.activeAtMs = qemuEventTime(event);
    else if (event.event === 'MIGRATION' && (event.data.status === 'failed' || event.data.status === 'cancelled')) return 'ended';
  }
}

async function withDeadline<T>(promise: Promise<T>, deadline: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), Math.max(0, deadline - Date.now()));
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface Parts {
  qmp: QmpClient;
  vm: string;
  options: BackgroundSnapshotOptions;
  sink: SnapshotSink;
  /** Set when the snapshot starts. */
  watch: MigrationWatch | undefined;
  /** QEMU's verdict, from the moment `migrate` was sent. */
  end: Promise<Settled<MigrationEnd>> | undefined;
}

function handle(parts: Parts, times: SnapshotTimes): BackgroundSnapshot {
  let cancelled = false;
  const progress = parts.options.onProgress ? setInterval(() => parts.options.onProgress?.(parts.sink.bytes), 1000) : undefined;
  const done = finish(parts, () => cancelled).finally(() => clearInterval(progress));
  done.catch(() => undefined);
  return {
    vm: parts.vm,
    times,
    done,
    bytes: () => parts.sink.bytes,
    ramProgress: async () => {
      const { ram } = await migrationInfo(parts.qmp, parts.vm);
      return ram && { total: ram.total, remaining: ram.remaining, transferred: ram.transferred };
    },
    cancel: async () => {
      cancelled = true;
      parts.sink.drop(new Error('snapshot cancelled'));
      await done.catch(() => undefined);
    },
  };
}

/** Waits for QEMU's verdict and our file; anything but both succeeding removes the file. */
async function finish(parts: Parts, isCancelled: () => boolean): Promise<SnapshotResult> {
  const { vm, sink } = parts;
  try {
    const received = settled(sink.done);
    const verdict = await (parts.end ?? settled(Promise.reject(new Error('the snapshot never started'))));
    if (!verdict.ok) throw verdict.error;
    const end = verdict.value;
    await sink.ended;
    const transfer = await received;
    if (isCancelled()) throw new MigrationError('snapshot cancelled; the guest runs on', { vm, kind: 'cancelled', status: end.status });
    if (sink.dropped || !transfer.ok) {
      // The receiver's own error (ENOSPC, EIO) says more than the relay's view of it (a reset).
      const why = transfer.ok ? sink.dropped : transfer.error;
      throw new MigrationError(`writing ${parts.options.file} failed (${messageOf(why)}); the guest runs on`, { vm, kind: 'receiver-failed', status: end.status, cause: why });
    }
    if (end.status !== 'completed') throw endError(vm, 'snapshot', end);
    return { ...transfer.value, end };
  } catch (err) {
    await abandon(parts, err);
    throw err;
  } finally {
    parts.watch?.close();
    await switchOff(parts);
  }
}

/**
 * The capability outlives the snapshot in QEMU: left on, the next stop-mode `migrate` (by code that does
 * not set it) would be a background snapshot too, and resume the VM it was meant to keep paused.
 */
async function switchOff(parts: Pick<Parts, 'qmp' | 'vm'>): Promise<void> {
  await configureMigration(parts.qmp, parts.vm, { backgroundSnapshot: false }).catch(() => undefined);
}

/** How long a failed snapshot keeps draining QEMU's stream so QEMU can lift the write protection. */
const DRAIN_LIMIT_MS = 120_000;

/**
 * Gives up on a snapshot without ever breaking QEMU's stream while it runs (see relay.ts): drain until
 * QEMU is done, then release our side and remove the file.
 */
async function abandon(parts: Parts, err: unknown): Promise<void> {
  parts.sink.drop(err instanceof Error ? err : new Error(String(err)));
  if (parts.end) await untilQemuDone(parts, parts.end);
  parts.sink.close(err);
  parts.watch?.close();
  await rm(parts.options.file, { force: true });
  await switchOff(parts);
}

/** Waits (bounded) until QEMU has ended the snapshot or is gone; a watch that merely gave up is not enough. */
async function untilQemuDone(parts: Parts, end: Promise<Settled<MigrationEnd>>): Promise<void> {
  const verdict = await withDeadline(end, Date.now() + DRAIN_LIMIT_MS);
  if (verdict === 'timeout' || verdict.ok) return;
  if (verdict.error instanceof MigrationError && verdict.error.kind === 'qemu-exited') return;
  const again = new MigrationWatch(parts.qmp, parts.vm);
  try {
    await again.end({ timeoutMs: DRAIN_LIMIT_MS }).catch(() => undefined);
  } finally {
    again.close();
  }
}

/** Adds where the VM was left to an error thrown before the guest was resumed. */
async function withRunState(qmp: QmpClient, err: unknown): Promise<unknown> {
  if (!(err instanceof MigrationError) || err.kind === 'qemu-exited') return err;
  const status = await qmp.command('query-status').then((s) => s.status, () => 'unknown (QMP failed)');
  err.message += ` (the VM is now ${status})`;
  return err;
}
