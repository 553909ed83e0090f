// The pause watchdog: whatever happens to the controller, the Temporal server or the network, a VM this
// host paused for a checkpoint is resumed by the host itself once the cluster's pause bound has passed.
// The lease is a file beside the VM's record, so a restarted worker re-arms it; once a checkpoint's lease
// is released or expired, a late pause or save for that checkpoint is refused.
// If the worker itself dies, the detached pause guard (process.ts) does the same a moment later.
import { rmSync } from 'node:fs';
import { ApplicationFailure } from '@temporalio/activity';
import type { Logger } from '../../../node/logger';
import type { QmpClient } from '../../qmp';
import { hostNow } from '../clock';
import type { VmRecord, VmRegistry } from '../registry';
import { leasePath, leaseTimes, mayBePaused, readLease, writeLease, type PauseLease } from './lease';
import { resumeAtDeadline } from './resume';

/** What the watchdog needs of the host worker (its runtime): the VMs it launched and their QMP sessions. */
export interface GuardedHost {
  readonly hostId: string;
  readonly log: Logger;
  readonly registry: VmRegistry;
  qmp(record: VmRecord): Promise<QmpClient>;
}

export class PauseWatchdog {
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(private readonly runtime: GuardedHost) {}

  private dir(record: VmRecord): string {
    return this.runtime.registry.vmDir(record.cluster, record.name);
  }

  read(record: VmRecord): PauseLease | undefined {
    return readLease(this.dir(record));
  }

  private write(record: VmRecord, lease: PauseLease): void {
    writeLease(this.dir(record), lease);
  }

  /** Called before pausing: records the lease (refusing one for a checkpoint that already ended). */
  hold(record: VmRecord, checkpointId: string, runId: string, boundMs: number): PauseLease {
    const existing = this.read(record);
    if (existing?.checkpointId === checkpointId) {
      if (existing.runId !== runId) {
        throw ApplicationFailure.nonRetryable(`checkpoint id ${checkpointId} was used before by another run on VM ${record.name}`, 'CheckpointIdReused');
      }
      if (existing.state !== 'held') {
        throw ApplicationFailure.nonRetryable(
          `checkpoint ${checkpointId} already ended on VM ${record.name} (${existing.state}); not pausing it again`,
          'CheckpointEnded',
        );
      }
      this.arm(record, existing);
      return existing;
    }
    const now = hostNow();
    const lease: PauseLease = { checkpointId, runId, state: 'held', pausedAt: now, ...leaseTimes(now, boundMs) };
    this.write(record, lease);
    this.arm(record, lease);
    return lease;
  }

  /**
   * Called when the checkpoint is abandoned, before its VMs are resumed: every later step of it is refused
   * from now on, but the lease keeps its deadline and stays armed until `release` (after a successful cont),
   * so a worker dying in between leaves the VM to the watchdog or the guard, never paused for good.
   */
  abandon(record: VmRecord, checkpointId: string): void {
    const existing = this.read(record);
    if (existing?.checkpointId !== checkpointId) {
      // Its pause has not arrived (yet): end the checkpoint here, so a late pause is refused — unless
      // another checkpoint's lease still guards a paused VM (never take that protection away).
      if (!mayBePaused(existing)) this.write(record, { checkpointId, state: 'released', pausedAt: 0, deadline: 0, guardAfterMs: 0 });
      return;
    }
    if (existing.state === 'held') this.write(record, { ...existing, state: 'abandoning' });
  }

  /** Called once the VM was resumed by the protocol (its cont succeeded). */
  release(record: VmRecord, checkpointId: string): void {
    const existing = this.read(record);
    if (existing?.checkpointId === checkpointId && !mayBePaused(existing)) return;
    this.write(record, { checkpointId, state: 'released', pausedAt: existing?.pausedAt ?? 0, deadline: existing?.deadline ?? 0, guardAfterMs: 0 });
    this.disarm(record);
  }

  /** Refuses to go on with a checkpoint whose pause is no longer held (bound passed, or ended), or another run's. */
  check(record: VmRecord, checkpointId: string, runId?: string): PauseLease {
    const lease = this.read(record);
    if (!lease || lease.checkpointId !== checkpointId || lease.state !== 'held' || (runId !== undefined && lease.runId !== runId)) {
      throw ApplicationFailure.nonRetryable(
        `VM ${record.name} is not paused for checkpoint ${checkpointId}${lease?.checkpointId === checkpointId ? ` (lease ${lease.state})` : ''}`,
        'NotPaused',
      );
    }
    if (hostNow() >= lease.deadline) {
      throw ApplicationFailure.nonRetryable(`the pause bound of VM ${record.name} has passed`, 'PauseBoundExceeded');
    }
    return lease;
  }

  /** The VM is gone: drop its timer and lease. */
  forget(record: VmRecord): void {
    this.disarm(record);
    rmSync(leasePath(this.dir(record)), { force: true });
  }

  /** Re-arms the leases found on disk (after a worker restart). */
  recover(): void {
    for (const record of this.runtime.registry.list()) {
      if (record.host !== this.runtime.hostId) continue;
      const lease = this.read(record);
      if (lease && mayBePaused(lease)) this.arm(record, lease);
    }
  }

  stop(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  private key(record: VmRecord): string {
    return `${record.cluster}/${record.name}`;
  }

  private disarm(record: VmRecord): void {
    const timer = this.timers.get(this.key(record));
    if (timer) clearTimeout(timer);
    this.timers.delete(this.key(record));
  }

  private arm(record: VmRecord, lease: PauseLease): void {
    this.disarm(record);
    const timer = setTimeout(() => void this.expire(record, lease.checkpointId), Math.max(0, lease.deadline - hostNow()));
    timer.unref();
    this.timers.set(this.key(record), timer);
  }

  private async expire(record: VmRecord, checkpointId: string): Promise<void> {
    this.timers.delete(this.key(record));
    const lease = this.read(record);
    if (!lease || lease.checkpointId !== checkpointId || !mayBePaused(lease)) return;
    this.write(record, { ...lease, state: 'expired' });
    const log = this.runtime.log.child({ vm: record.name, cluster: record.cluster, checkpoint: checkpointId });
    log.error('pause bound passed: resuming the VM and abandoning the checkpoint on it');
    try {
      // Not behind runtime.exclusive(): a save in progress must not delay this; cancelling its
      // migration makes that save fail, which is what we want.
      await resumeAtDeadline(await this.runtime.qmp(record), record.name, log);
      log.warn('VM resumed by the watchdog');
    } catch (err) {
      log.error({ err }, 'the watchdog could not resume the VM');
    }
  }
}
