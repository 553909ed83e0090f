// Migration control over QMP, in one place: capabilities and parameters, waiting for a migration's final
// status (QEMU's MIGRATION events, with a slow query-migrate poll as a safety net), and cancelling.
import {
  MIGRATION_FINAL_STATUSES,
  QmpCommandError,
  QmpDisconnectedError,
  QmpError,
  QmpTimeoutError,
  type MigrationCapability,
  type MigrationInfo,
  type MigrationStatus,
  type QmpClient,
  type QmpEvent,
  type QmpEventStream,
  type QmpVersion,
} from '../../qmp';
import { hostNow, qemuEventTime } from '../clock';
import { MigrationError } from './errors';

/** QEMU caps migration at 128 MiB/s by default; our streams go to local files, so lift it. */
export const UNLIMITED_BANDWIDTH = 2 ** 40; // 1 TiB/s

export type FinalMigrationStatus = 'completed' | 'failed' | 'cancelled';

export function isFinalStatus(status: MigrationStatus | undefined): status is FinalMigrationStatus {
  return status !== undefined && MIGRATION_FINAL_STATUSES.includes(status);
}

/** True while QEMU is moving state (a new migration would be refused; a stale one needs cancelling). */
export function isActiveStatus(status: MigrationStatus | undefined): boolean {
  return status !== undefined && status !== 'none' && !isFinalStatus(status);
}

export interface MigrationSettings {
  /** MIGRATION events: every wait of this layer relies on them (default on). */
  events?: boolean;
  /** Make the next `migrate` a background snapshot (QEMU ≥ 6.0, Linux userfaultfd write-protect). */
  backgroundSnapshot?: boolean;
  /** Bytes per second. */
  maxBandwidth?: number;
}

/** Sets capabilities (one command) and parameters. QEMU refuses both while a migration is active. */
export async function configureMigration(qmp: QmpClient, vm: string, settings: MigrationSettings): Promise<void> {
  const capabilities: Array<{ capability: MigrationCapability; state: boolean }> = [
    { capability: 'events', state: settings.events ?? true },
  ];
  if (settings.backgroundSnapshot !== undefined) {
    capabilities.push({ capability: 'background-snapshot', state: settings.backgroundSnapshot });
  }
  try {
    await qmp.command('migrate-set-capabilities', { capabilities });
    if (settings.maxBandwidth !== undefined) await qmp.command('migrate-set-parameters', { 'max-bandwidth': settings.maxBandwidth });
  } catch (err) {
    throw settingsError(vm, err);
  }
}

function settingsError(vm: string, err: unknown): unknown {
  if (!(err instanceof QmpCommandError)) return qmpFailure(vm, 'could not configure migration', err);
  const said = err.description;
  if (/background-snapshot/i.test(said)) {
    return new MigrationError(
      'live snapshots are not possible here: QEMU cannot write-protect guest RAM with userfaultfd ' +
        '(it needs Linux ≥ 5.7 with userfaultfd write-protect, guest RAM it can register — anonymous or ' +
        'shmem — and permission to call userfaultfd(2): root, CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1)',
      { vm, kind: 'unsupported', qemuSaid: said, cause: err },
    );
  }
  const busy = /in progress|is active/i.test(said);
  return new MigrationError('could not configure migration', { vm, kind: busy ? 'wrong-state' : 'failed', qemuSaid: said, cause: err });
}

/** A QMP failure as a MigrationError: a lost session means QEMU is gone. Other errors pass through. */
export function qmpFailure(vm: string, what: string, err: unknown): unknown {
  if (err instanceof MigrationError) return err;
  if (err instanceof QmpDisconnectedError) return new MigrationError(`${what}: QEMU exited`, { vm, kind: 'qemu-exited', cause: err });
  if (err instanceof QmpCommandError) return new MigrationError(what, { vm, kind: 'failed', qemuSaid: err.description, cause: err });
  if (err instanceof QmpError) return new MigrationError(`${what}: ${err.message}`, { vm, kind: 'failed', cause: err });
  return err;
}

/**
 * Until 8.1, QEMU left guest RAM write-protected when a background snapshot was cancelled or failed
 * (upstream commit 3a8b81f2e6, "migration: stop tracking ram writes when cancelling background
 * migration"): the guest then freezes at its next write to a page not yet saved. Measured on 7.2.
 */
export function cancelsBackgroundSnapshotSafely(version: QmpVersion): boolean {
  return version.major > 8 || (version.major === 8 && version.minor >= 1);
}

export interface MigrationEnd {
  status: FinalMigrationStatus;
  /** Epoch ms (host clock): QEMU's timestamp of the MIGRATION event, or when the safety-net poll saw the status. */
  atMs: number;
  source: 'event' | 'poll';
  /** query-migrate right after the end: `error-desc`, `total-time`, `downtime`, RAM counters. */
  info: MigrationInfo;
}

export interface EndOptions {
  /** Give up (kind 'timeout') after this long; the migration may still be running. Default 24 h. */
  timeoutMs?: number;
  /** query-migrate this often in case an event is missed (default 1000 ms). */
  pollMs?: number;
}

type Step = { kind: 'event'; result: IteratorResult<QmpEvent<'MIGRATION'>> } | { kind: 'tick' };

/**
 * Follows one migration to its final status. Create it BEFORE the command that starts (or cancels) the
 * migration, so no MIGRATION event can slip by between the command and the wait; close() it when done.
 */
export class MigrationWatch {
  readonly #qmp: QmpClient;
  readonly #vm: string;
  readonly #events: QmpEventStream<'MIGRATION'>;
  #pending: Promise<IteratorResult<QmpEvent<'MIGRATION'>>> | undefined;
  /** Last status seen (event or poll), for error messages. */
  last: MigrationStatus | undefined;

  constructor(qmp: QmpClient, vm: string) {
    this.#qmp = qmp;
    this.#vm = vm;
    this.#events = qmp.events({ names: ['MIGRATION'] });
  }

  /** Resolves with the final status; rejects with MigrationError kind 'qemu-exited' or 'timeout'. */
  async end(options: EndOptions = {}): Promise<MigrationEnd> {
    const timeoutMs = options.timeoutMs ?? 24 * 3600_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new MigrationError(`no final migration status within ${timeoutMs} ms (last: ${this.last ?? 'unknown'})`, {
          vm: this.#vm, kind: 'timeout', status: this.last,
        });
      }
      const step = await this.#next(Math.min(left, options.pollMs ?? 1000));
      const end = step.kind === 'event' ? await this.#fromEvent(step.result) : await this.#fromPoll();
      if (end) return end;
    }
  }

  close(): void {
    void this.#events.return();
  }

  /** The next event, or a tick when none came within `ms` (the pending next() is kept for later). */
  async #next(ms: number): Promise<Step> {
    this.#pending ??= this.#events.next();
    let timer: NodeJS.Timeout | undefined;
    const tick = new Promise<Step>((resolve) => {
      timer = setTimeout(() => resolve({ kind: 'tick' }), ms);
    });
    try {
      const step = await Promise.race([this.#pending.then((result): Step => ({ kind: 'event', result })), tick]);
      if (step.kind === 'event') this.#pending = undefined;
      return step;
    } catch (err) {
      throw qmpFailure(this.#vm, 'lost QEMU while waiting for the migration', err);
    } finally {
      clearTimeout(timer);
    }
  }

  async #fromEvent(result: IteratorResult<QmpEvent<'MIGRATION'>>): Promise<MigrationEnd | undefined> {
    if (result.done) {
      throw new MigrationError(`QEMU exited during the migration (last status: ${this.last ?? 'unknown'})`, {
        vm: this.#vm, kind: 'qemu-exited', status: this.last, cause: this.#qmp.closeReason,
      });
    }
    const status = result.value.data.status;
    this.last = status;
    if (!isFinalStatus(status)) return undefined;
    // An incoming QEMU exits right after a failed load: the event is then all there is to report.
    const info = await this.#info().catch((): MigrationInfo => ({ status }));
    return { status, atMs: qemuEventTime(result.value), source: 'event', info };
  }

  async #fromPoll(): Promise<MigrationEnd | undefined> {
    // A monitor that does not answer in time is no verdict: it can hang for a while when a vCPU waits on a
    // write-protected page while holding QEMU's big lock (background snapshot, slow receiver).
    const info = await this.#info().catch((err: unknown) => {
      if (err instanceof MigrationError && err.cause instanceof QmpTimeoutError) return undefined;
      throw err;
    });
    if (!info) return undefined;
    this.last = info.status ?? this.last;
    return isFinalStatus(info.status) ? { status: info.status, atMs: hostNow(), source: 'poll', info } : undefined;
  }

  async #info(): Promise<MigrationInfo> {
    try {
      return await this.#qmp.command('query-migrate');
    } catch (err) {
      throw qmpFailure(this.#vm, 'lost QEMU while waiting for the migration', err);
    }
  }
}

export interface CancelOutcome {
  /** What query-migrate said before anything was done (undefined: no migration ever ran). */
  before: MigrationStatus | undefined;
  /** Set when a migration was running: how it ended (usually 'cancelled'; it may have completed first). */
  end?: MigrationEnd;
}

/**
 * Cancels the migration in progress, if any, and returns only once QEMU reports a final status, so
 * the next `migrate` is not refused and no stale writer is left. A no-op when nothing is running.
 * Refuses (kind 'wrong-state') to cancel a background snapshot on a QEMU that would leave the guest
 * frozen (see cancelsBackgroundSnapshotSafely): cancel that through its own handle, which drains it.
 */
export async function cancelMigration(qmp: QmpClient, vm: string, options: EndOptions = {}): Promise<CancelOutcome> {
  const watch = new MigrationWatch(qmp, vm); // before the query: no event can be missed in between
  try {
    const before = (await qmp.command('query-migrate')).status;
    if (!isActiveStatus(before)) return { before };
    if (!cancelsBackgroundSnapshotSafely(qmp.version) && (await backgroundSnapshotEnabled(qmp))) {
      throw new MigrationError(
        `a background snapshot is being written (status ${before}); QEMU ${qmp.version.major}.${qmp.version.minor} ` +
          'would leave the guest frozen if it were cancelled: cancel it through its BackgroundSnapshot handle',
        { vm, kind: 'wrong-state', status: before },
      );
    }
    if (before !== 'cancelling') await qmp.command('migrate_cancel');
    return { before, end: await watch.end(options) };
  } catch (err) {
    throw qmpFailure(vm, 'could not cancel the migration', err);
  } finally {
    watch.close();
  }
}

async function backgroundSnapshotEnabled(qmp: QmpClient): Promise<boolean> {
  const caps = await qmp.command('query-migrate-capabilities');
  return caps.some((c) => c.capability === 'background-snapshot' && c.state);
}

/** query-migrate, with a lost session reported as the VM's QEMU having exited. */
export async function migrationInfo(qmp: QmpClient, vm: string): Promise<MigrationInfo> {
  try {
    return await qmp.command('query-migrate');
  } catch (err) {
    throw qmpFailure(vm, 'could not query the migration', err);
  }
}

