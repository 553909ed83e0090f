// Signals, queries and updates of the cluster record and of every operation (the contract between workflows,
// activities and the client). Pure: workflows import it, and so do activities, workers and the client.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { ClusterSpec } from './spec';

export type OperationKind = 'launch' | 'checkpoint' | 'restart' | 'shutdown' | 'delete' | 'protect' | 'retention' | 'recover';

// ---- the cluster record: one long-lived workflow per cluster (id: vccr-cluster-<name>) ------------------

export interface ClusterLock {
  operation: OperationKind;
  workflowId: string;
  runId: string;
  since: number;
  checkpointId?: string;
}

export type ClusterStatus = 'new' | 'launching' | 'running' | 'down' | 'degraded';

export interface ClusterOperationRecord {
  operation: OperationKind;
  workflowId: string;
  outcome: 'completed' | 'failed';
  at: number;
  checkpointId?: string;
  detail?: string;
}

export interface ClusterState {
  cluster: string;
  spec?: ClusterSpec;
  /** VM name → host it currently runs on (differs from the spec after a restart with --host a=b). */
  placement: Record<string, string>;
  status: ClusterStatus;
  lock?: ClusterLock;
  lastCheckpointId?: string;
  /** Most recent operations, newest last. */
  recent: ClusterOperationRecord[];
}

export interface AcquireRequest {
  operation: OperationKind;
  workflowId: string;
  runId: string;
  checkpointId?: string;
  /** launch: the spec to record. restart: the manifest's spec, used if the cluster has none. */
  spec?: ClusterSpec;
  /** Take the lock from this holder, whose workflow is known to be closed. */
  stealFrom?: { workflowId: string; runId: string };
}

export interface AcquireReply {
  spec: ClusterSpec;
  placement: Record<string, string>;
  status: ClusterStatus;
  lastCheckpointId?: string;
}

export interface ReleaseRequest {
  workflowId: string;
  outcome: 'completed' | 'failed';
  status?: ClusterStatus;
  placement?: Record<string, string>;
  checkpointId?: string;
  detail?: string;
}

/** Something worth keeping in the record's recent list that is not a lock release (a recovery, say). */
export type NoteRequest = Omit<ClusterOperationRecord, 'at'>;

export const acquireUpdate = defineUpdate<AcquireReply, [AcquireRequest]>('acquire');
export const noteSignal = defineSignal<[NoteRequest]>('note');
export const releaseSignal = defineSignal<[ReleaseRequest]>('release');
/** The `state` query's answer (documented in docs/queries.md). */
export interface ClusterStateView extends ClusterState {
  format: 'vccr-cluster-state';
  /** Bumped only when a field is removed or changes meaning; new fields may appear in any version. */
  version: 1;
}

export const clusterStateQuery = defineQuery<ClusterStateView>('state');
/**
 * Asks the cluster record to continue-as-new now instead of when its history grows long: after a deploy,
 * this moves the long-lived record onto the new workflow code; the history recorder uses it to capture a
 * continue-as-new deterministically.
 */
export const rolloverSignal = defineSignal('rollover');

// ---- operations (launch, checkpoint, restart, shutdown) ----------------------------------------------

export type VmPhaseState =
  | 'pending'
  | 'launching'
  | 'running'
  | 'pausing'
  | 'paused'
  | 'freezing'
  | 'frozen'
  | 'saving'
  /** Live mode: running again while its RAM is written in the background. */
  | 'writing'
  | 'saved'
  | 'resuming'
  | 'verifying'
  | 'loading'
  | 'loaded'
  | 'stopping'
  | 'stopped'
  | 'failed';

export interface VmProgress {
  host: string;
  state: VmPhaseState;
  bytesDone: number;
  bytesTotal: number;
}

export interface PhaseTiming {
  start: number;
  end?: number;
}

/** The `progress` query's answer (documented in docs/queries.md). */
export interface OperationProgress {
  format: 'vccr-progress';
  /** Bumped only when a field is removed or changes meaning; new fields may appear in any version. */
  version: 1;
  operation: OperationKind;
  cluster: string;
  checkpointId?: string;
  phase: string;
  vms: Record<string, VmProgress>;
  phases: Record<string, PhaseTiming>;
  bytesDone: number;
  bytesTotal: number;
  startedAt: number;
  error?: string;
}

export const progressQuery = defineQuery<OperationProgress>('progress');

/** Sent by host activities while they stream VM state, so the progress query can report bytes. */
export interface TransferProgress {
  vm: string;
  bytesDone: number;
  bytesTotal: number;
}
export const transferProgressSignal = defineSignal<[TransferProgress[]]>('transferProgress');
