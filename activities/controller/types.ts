// Requests and replies of the controller activities (cluster lock and checkpoint store).
import type { Manifest, ResumeRecord } from '../../common/manifest';
import type { AcquireRequest } from '../../common/messages';

export interface AcquireClusterRequest extends AcquireRequest {
  cluster: string;
  /** Create the cluster record if there is none (launch, and restart from a manifest). */
  create: boolean;
}

export interface BeginCheckpointRequest {
  store: string;
  cluster: string;
  checkpointId: string;
  workflowId: string;
  runId: string;
}

export interface BeginCheckpointReply {
  dir: string;
  freeBytes: number;
}

export interface AbortCheckpointRequest {
  store: string;
  cluster: string;
  checkpointId: string;
  workflowId: string;
  runId: string;
  phase: string;
  reason: string;
}

export interface RecordResumeRequest {
  store: string;
  cluster: string;
  record: ResumeRecord;
}

export interface FindCheckpointRequest {
  store: string;
  cluster: string;
  /** Newest committed one if absent. */
  checkpointId?: string;
}

export interface CheckpointSummary {
  checkpointId: string;
  committedAt: string;
  vms: number;
  totalBytes: number;
  hosts: string[];
  /** VM → host it ran on when checkpointed. */
  placement: Record<string, string>;
}

export interface FailedCheckpointSummary {
  checkpointId: string;
  failedAt: string;
  phase: string;
  reason: string;
}

export interface ListCheckpointsReply {
  committed: CheckpointSummary[];
  failed: FailedCheckpointSummary[];
}

export interface VerifyReport {
  checkpointId: string;
  ok: boolean;
  problems: string[];
  files: Array<{ file: string; size: number; sha256: string; ok: boolean }>;
}

export interface DeleteCheckpointRequest {
  store: string;
  cluster: string;
  checkpointId: string;
}

export interface DeleteReport {
  checkpointId: string;
  removedFiles: string[];
}

export interface GarbageReport {
  removedLayers: string[];
  removedPartials: string[];
  /** Set when garbage collection stopped without deleting anything, and why (it could not read something). */
  skipped?: string;
}

export type { Manifest };
