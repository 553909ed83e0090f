// Queries, signals and updates of the watch (workflows/watch.ts), shared with activities and the client.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { Failure, WatchSettings } from './protection';

/**
 * watching: every VM and host answers (or the cluster is busy with, or stopped by, a planned operation);
 * suspect: something looks dead, being confirmed; recovering: a recovery is running or will be retried;
 * needs-operator: the watch will not act alone (unreachable host without the fencing rule, no spare
 * host, too many recoveries) — the reason says what to do; stopped: protection was switched off.
 */
export type WatchPhase = 'watching' | 'suspect' | 'recovering' | 'needs-operator' | 'stopped';

export interface RecoverySummary {
  workflowId: string;
  startedAt: number;
  endedAt: number;
  outcome: 'completed' | 'failed';
  checkpointId?: string;
  /** VM → host after the recovery. */
  placement?: Record<string, string>;
  detail: string;
}

export interface WatchState {
  cluster: string;
  phase: WatchPhase;
  /** Why the watch is in this phase (for needs-operator: what the operator should do). */
  reason: string;
  /** Epoch ms the phase began. */
  since: number;
  lastCheckAt?: number;
  lastHealthyAt?: number;
  /** What looks wrong, since when, and how many checks in a row saw it. */
  suspicion?: { since: number; checks: number; failures: Failure[] };
  /** Hosts an operator confirmed dead (`vccr recover --host-dead`). */
  confirmedDead: string[];
  /** Hosts whose VMs were moved away while unreachable: their leftovers are killed when they answer again. */
  fencePending: string[];
  /** A recovery failed and is retried (even though the failed restart left the cluster down). */
  retrying: boolean;
  /** Counting recoveries for the per-hour limit starts here (an operator's `vccr recover` resets it). */
  countFrom: number;
  recoveries: RecoverySummary[];
  settings: WatchSettings;
}

export interface OperatorRecoverRequest {
  /** Hosts the operator confirms are dead (their VMs cannot be running): they may be replaced by spares. */
  deadHosts: string[];
}

/** The `watchState` query's answer (documented in docs/queries.md). */
export interface WatchStateView extends WatchState {
  format: 'vccr-watch-state';
  /** Bumped only when a field is removed or changes meaning; new fields may appear in any version. */
  version: 1;
}

export const watchStateQuery = defineQuery<WatchStateView>('watchState');
export const stopWatchSignal = defineSignal('stopWatch');
export const configureWatchSignal = defineSignal<[WatchSettings]>('configureWatch');
/** An operator's go-ahead: confirms dead hosts, resets the recovery limit, checks at once. */
export const operatorRecoverUpdate = defineUpdate<WatchStateView, [OperatorRecoverRequest]>('operatorRecover');
