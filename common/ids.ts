// Every workflow id and task queue name VCCR uses, built here and nowhere else: workers, workflows, the
// client and the tests must agree on them, and a user finds them in the Web UI by these shapes. Pure
// (no Node imports): workflow code uses it too.

/** The task queue of the controller workers (workflows and controller activities), unless configured. */
export const DEFAULT_CONTROLLER_TASK_QUEUE = 'vccr-controller';

/** The task queue a host's worker polls, unless the spec names another (hosts.<id>.taskQueue). */
export function hostTaskQueue(host: string): string {
  return `vccr-host-${host}`;
}

const CLUSTER_RECORD_PREFIX = 'vccr-cluster-';

/** The cluster record, one long-lived workflow per cluster: its lock and its memory. */
export function clusterWorkflowId(cluster: string): string {
  return `${CLUSTER_RECORD_PREFIX}${cluster}`;
}

/** The cluster a cluster record's workflow id names, or undefined for any other workflow id. */
export function clusterOfRecord(workflowId: string): string | undefined {
  return workflowId.startsWith(CLUSTER_RECORD_PREFIX) ? workflowId.slice(CLUSTER_RECORD_PREFIX.length) : undefined;
}

/**
 * A checkpoint's workflow id: one per checkpoint id, so the same checkpoint can never be taken twice
 * (the client starts it with REJECT_DUPLICATE).
 */
export function checkpointWorkflowId(cluster: string, checkpointId: string): string {
  return `vccr-${cluster}-checkpoint-${checkpointId}`;
}

/** A preflight (`vccr doctor`): of a cluster's spec, or of hosts named one by one. */
export function doctorWorkflowId(cluster: string | undefined, unique: string): string {
  return cluster === undefined ? `vccr-doctor-${unique}` : operationWorkflowId(cluster, 'doctor', unique);
}

/** Operations other than a checkpoint, each run once under a unique suffix the caller chooses. */
export type OperationName = 'launch' | 'restart' | 'down' | 'status' | 'list' | 'show' | 'verify' | 'delete' | 'doctor' | 'protect' | 'recover';

/** `vccr-<cluster>-<operation>-<parts...>`, e.g. vccr-demo-restart-ck1-m3x2-a1b2c3. */
export function operationWorkflowId(cluster: string, operation: OperationName, ...parts: string[]): string {
  return [`vccr-${cluster}-${operation}`, ...parts].join('-');
}

/** The Temporal Schedule that protects a cluster (`vccr protect`): visible on the Web UI's Schedules page. */
export function protectScheduleId(cluster: string): string {
  return `vccr-protect-${cluster}`;
}

/** The workflow each action of the protection Schedule starts (Temporal appends the scheduled time). */
export function protectRunWorkflowId(cluster: string): string {
  return operationWorkflowId(cluster, 'protect');
}

/** The long-lived watch of a protected cluster. */
export function watchWorkflowId(cluster: string): string {
  return `vccr-watch-${cluster}`;
}

/** An automatic recovery the watch starts. */
export function recoveryWorkflowId(cluster: string, unique: string): string {
  return operationWorkflowId(cluster, 'recover', unique);
}

/** A restart a recovery runs: the watch tells it from an operator's restart by this shape. */
export function recoveryRestartWorkflowId(cluster: string, checkpointId: string, unique: string): string {
  return operationWorkflowId(cluster, 'restart', 'recovery', checkpointId, unique);
}

export function isRecoveryRestart(workflowId: string): boolean {
  return workflowId.includes('-restart-recovery-');
}
