// Stop-mode save and load: a paused VM's state into our StateReceiver (QEMU connects to the unix socket
// it listens on), and a state file back into a QEMU started with `-incoming defer`. Both return only
// once QEMU reports the migration's final status, and a save that does not complete leaves no file.
import { constants, existsSync } from 'node:fs';
import { access, rm } from 'node:fs/promises';
import type { QmpClient } from '../../qmp';
import type { StateCodec } from '../../../common/spec';
import { sendState, StateReceiver, type TransferResult } from '../transfer';
import {
  cancelMigration,
  configureMigration,
  isActiveStatus,
  MigrationWatch,
  qmpFailure,
  UNLIMITED_BANDWIDTH,
  type MigrationEnd,
} from './control';
import { hostNow } from '../clock';
import { MigrationError, messageOf } from './errors';

export interface StreamOptions {
  vm: string;
  /** The unix socket between QEMU and us (we listen for a save, QEMU listens for a load). */
  socketPath: string;
  /** The state file: created exclusively by a save (removed again on failure), read by a load. */
  file: string;
  /** Cancels: a save is cancelled in QEMU and its file removed; a load stops sending. */
  signal?: AbortSignal;
  /** Bytes moved so far, about once a second. */
  onProgress?: (bytes: number) => void;
  /** How long QEMU may take to reach a final status (default 24 h). */
  timeoutMs?: number;
  /** The file is (to be) compressed with this codec (the cluster spec's stateCompression). */
  codec?: StateCodec;
}

export interface SaveOptions extends StreamOptions {
  /** Bytes per second (default: unlimited; QEMU's own default is 128 MiB/s). */
  maxBandwidth?: number;
  /**
   * The caller already set this QEMU's migration settings for a stop-mode save (configureMigration with
   * events on and background-snapshot off, e.g. before the pause): they are not set again inside it.
   */
  configured?: boolean;
  /** A migration still active — left by an earlier attempt whose reader is gone — is cancelled instead of refused. */
  cancelStale?: boolean;
  /**
   * Called once everything is ready, right before `migrate` is sent: the caller's last checks (is the
   * checkpoint still on?). Throwing ends the save there, with nothing written.
   */
  beforeMigrate?: () => Promise<void>;
}

export interface LoadOptions extends StreamOptions {
  /** Called once QEMU listens, right before the state is sent. */
  beforeSend?: () => Promise<void>;
  /** Checks what was sent (size, sha256) before QEMU's verdict is awaited; throwing ends the load there. */
  checkSent?: (sent: TransferResult) => void;
}

export interface StreamResult extends TransferResult {
  /** Epoch ms when `migrate` (or `migrate-incoming`) was sent. */
  startedAtMs: number;
  /** How QEMU ended it (always 'completed' here): its timestamp, downtime, RAM counters. */
  end: MigrationEnd;
}

/**
 * Saves a paused VM's state to `file`. Refuses (kind 'wrong-state', with its runState) a running VM (that
 * would be a live migration, not a checkpoint) and one left in postmigrate by an earlier save (QEMU cannot
 * migrate it again without running it); a migration still active is refused too, or with `cancelStale`
 * cancelled first.
 */
export async function saveToStream(qmp: QmpClient, options: SaveOptions): Promise<StreamResult> {
  const { vm } = options;
  options.signal?.throwIfAborted();
  await requireSaveable(qmp, vm, options.cancelStale ?? false);
  if (!options.configured) {
    await configureMigration(qmp, vm, { events: true, backgroundSnapshot: false, maxBandwidth: options.maxBandwidth ?? UNLIMITED_BANDWIDTH });
  }
  const receiver = new StateReceiver(options.socketPath, options.file, { onProgress: options.onProgress, signal: options.signal, codec: options.codec });
  await startReceiver(receiver, vm, options.file);
  const watch = new MigrationWatch(qmp, vm);
  // A failing receiver or a cancelled save must stop QEMU's side too, or the wait below never ends.
  const stopQemu = () => void cancelMigration(qmp, vm).catch(() => undefined);
  try {
    const received = settled(receiver.done);
    receiver.done.catch(stopQemu);
    options.signal?.addEventListener('abort', stopQemu, { once: true });
    await options.beforeMigrate?.();
    const startedAtMs = hostNow();
    await qmp.command('migrate', { uri: `unix:${options.socketPath}` }).catch((err: unknown) => {
      throw qmpFailure(vm, 'QEMU refused to start the save', err);
    });
    const end = await watch.end({ timeoutMs: options.timeoutMs });
    const transfer = await received;
    if (options.signal?.aborted) throw new MigrationError('save cancelled', { vm, kind: 'cancelled', status: end.status });
    if (!transfer.ok) throw new MigrationError(`writing ${options.file} failed: ${messageOf(transfer.error)}`, { vm, kind: 'receiver-failed', status: end.status, cause: transfer.error });
    if (end.status !== 'completed') throw endError(vm, 'save', end);
    return { ...transfer.value, startedAtMs, end };
  } catch (err) {
    receiver.abort(err);
    await cancelMigration(qmp, vm).catch(() => undefined); // "really over" before we return, unless QEMU is gone
    await rm(options.file, { force: true });
    throw err;
  } finally {
    options.signal?.removeEventListener('abort', stopQemu);
    watch.close();
  }
}

/** Starts a receiver on a state file that must not exist yet (an earlier attempt's file is never overwritten). */
export async function startReceiver(receiver: StateReceiver, vm: string, file: string): Promise<void> {
  if (existsSync(file)) throw new MigrationError(`${file} already exists; a state file is never overwritten`, { vm, kind: 'wrong-state' });
  try {
    await receiver.start();
  } catch (err) {
    await rm(file, { force: true });
    throw new MigrationError(`could not create ${file} or listen for QEMU: ${messageOf(err)}`, { vm, kind: 'receiver-failed', cause: err });
  }
}

async function requireSaveable(qmp: QmpClient, vm: string, cancelStale: boolean): Promise<void> {
  try {
    const { status } = await qmp.command('query-status');
    if (status === 'postmigrate') {
      throw new MigrationError('it was left in postmigrate by an earlier save and cannot be saved again without running it', { vm, kind: 'wrong-state', runState: status });
    }
    if (status !== 'paused') throw new MigrationError(`it is ${status}; a stop-mode save needs it paused`, { vm, kind: 'wrong-state', runState: status });
    const { status: migration } = await qmp.command('query-migrate');
    if (isActiveStatus(migration)) {
      if (!cancelStale) throw new MigrationError(`a migration is already ${migration}; cancel it first`, { vm, kind: 'wrong-state', status: migration });
      await cancelMigration(qmp, vm, { timeoutMs: STALE_CANCEL_MS });
    }
  } catch (err) {
    throw qmpFailure(vm, 'could not check the VM before saving it', err);
  }
}

/**
 * Loads `file` into a QEMU started with `-incoming defer` (it stays paused with `-S`: resumeVm() it).
 * A QEMU whose load fails exits by itself (QEMU 7.2), so a failed load is usually kind 'qemu-exited'.
 */
export async function loadFromStream(qmp: QmpClient, options: LoadOptions): Promise<StreamResult> {
  const { vm } = options;
  const { status } = await qmp.command('query-status').catch((err: unknown) => {
    throw qmpFailure(vm, 'could not check the VM before loading it', err);
  });
  if (status !== 'inmigrate') throw new MigrationError(`it is ${status}, not waiting for its state (-incoming defer)`, { vm, kind: 'wrong-state', runState: status });
  // Checked before QEMU listens: once it does, only a complete stream (or its exit) ends the wait.
  await access(options.file, constants.R_OK).catch((err: unknown) => {
    throw new MigrationError(`cannot read ${options.file}: ${messageOf(err)}`, { vm, kind: 'receiver-failed', cause: err });
  });
  await configureMigration(qmp, vm, { events: true });
  const watch = new MigrationWatch(qmp, vm);
  const startedAtMs = hostNow();
  try {
    await qmp.command('migrate-incoming', { uri: `unix:${options.socketPath}` }).catch((err: unknown) => {
      throw qmpFailure(vm, 'QEMU refused to listen for the state', err);
    });
    await options.beforeSend?.();
    const transfer = await sendState(options.socketPath, options.file, { onProgress: options.onProgress, signal: options.signal, codec: options.codec }).catch(
      (err: unknown) => sendFailure(watch, vm, options.file, err),
    );
    options.checkSent?.(transfer);
    const end = await watch.end({ timeoutMs: options.timeoutMs });
    if (end.status !== 'completed') throw endError(vm, LOAD_FAILED, end);
    return { ...transfer, startedAtMs, end };
  } finally {
    watch.close();
  }
}

/** Our send failed: if QEMU says why (it rejected the stream, or exited), that is the better message. */
async function sendFailure(watch: MigrationWatch, vm: string, file: string, err: unknown): Promise<never> {
  const verdict = await settled(watch.end({ timeoutMs: QEMU_VERDICT_MS, pollMs: 200 }));
  if (verdict.ok && verdict.value.status !== 'completed') throw endError(vm, LOAD_FAILED, verdict.value);
  if (!verdict.ok && verdict.error instanceof MigrationError && verdict.error.kind === 'qemu-exited') throw verdict.error;
  throw new MigrationError(`sending ${file} failed: ${messageOf(err)}`, { vm, kind: 'receiver-failed', status: watch.last, cause: err });
}

/** How long a save waits for QEMU to end a stale migration it cancels. */
const STALE_CANCEL_MS = 10_000;

/** An incoming QEMU gives no `error-desc`; 7.2 prints the reason on its stderr and exits. */
const LOAD_FAILED = 'QEMU rejected the state stream (its reason is on its stderr, not in QMP): load';

/** How long a failed send waits for QEMU's own account of the failure. */
const QEMU_VERDICT_MS = 2000;

export function endError(vm: string, what: string, end: MigrationEnd): MigrationError {
  return new MigrationError(`${what} ${end.status}`, {
    vm, kind: end.status === 'cancelled' ? 'cancelled' : 'failed', status: end.status, qemuSaid: end.info['error-desc'],
  });
}

export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** Never rejects: lets us wait for QEMU's verdict first and look at our side's outcome afterwards. */
export function settled<T>(promise: Promise<T>): Promise<Settled<T>> {
  return promise.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}
