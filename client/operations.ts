// Starting VCCR's workflows, typed by the workflow functions themselves (imported as types only, so the
// client never loads workflow code), each with the one-line summary and markdown details the Web UI
// shows; then following one to its result while polling its progress.
import { WorkflowExecutionAlreadyStartedError, type Client, type WorkflowHandle } from '@temporalio/client';
import type { WorkflowResultType } from '@temporalio/common';
import type * as workflows from '../workflows';
import type { OperationText } from '../common/operation-summary';
import { progressQuery, type OperationProgress } from '../common/messages';
import { EXIT, VccrError, toVccrError } from './errors';

/** The workflows a client starts (the cluster record is started by the controller, never by a client). */
type Workflows = Omit<typeof workflows, 'clusterRecord'>;
export type OperationType = keyof Workflows;
export type OperationArgs<K extends OperationType> = Parameters<Workflows[K]>;
export type OperationResult<K extends OperationType> = WorkflowResultType<Workflows[K]>;

export const WORKFLOW_TASK_TIMEOUT = '3 seconds';

export interface WatchOptions {
  /** Called with the operation's progress every `pollMs` while it runs. */
  onProgress?: (progress: OperationProgress) => void;
  pollMs?: number;
  /** Return once started instead of waiting for the result. */
  noWait?: boolean;
}

/** What an operation started with `noWait` returns. */
export interface Started {
  workflowId: string;
}

export class Operations {
  constructor(
    private readonly client: Client,
    private readonly taskQueue: string,
  ) {}

  async start<K extends OperationType>(type: K, workflowId: string, args: OperationArgs<K>, text: OperationText): Promise<WorkflowHandle<Workflows[K]>> {
    try {
      return await this.client.workflow.start<Workflows[K]>(type, {
        taskQueue: this.taskQueue,
        workflowId,
        args,
        staticSummary: text.summary,
        staticDetails: text.details,
        // Operation ids name the cluster and checkpoint: never run one twice.
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        // A workflow task lost with a crashed controller is retried after this (Temporal's default is 10 s).
        workflowTaskTimeout: WORKFLOW_TASK_TIMEOUT,
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        throw new VccrError(`an operation with id ${workflowId} already exists`, 'AlreadyStarted', EXIT.busy);
      }
      throw toVccrError(err);
    }
  }

  /** Starts an operation and waits for its result (no progress). */
  async execute<K extends OperationType>(type: K, workflowId: string, args: OperationArgs<K>, text: OperationText): Promise<OperationResult<K>> {
    const handle = await this.start(type, workflowId, args, text);
    try {
      return await handle.result();
    } catch (err) {
      throw toVccrError(err);
    }
  }

  /** Waits for the result, reporting progress meanwhile; with `noWait`, returns the workflow id at once. */
  async follow<W extends Workflows[OperationType]>(handle: WorkflowHandle<W>, watch: WatchOptions): Promise<WorkflowResultType<W> | Started> {
    if (watch.noWait) return { workflowId: handle.workflowId };
    const onProgress = watch.onProgress;
    let timer: NodeJS.Timeout | undefined;
    let watching = true;
    if (onProgress) {
      const poll = async () => {
        try {
          const progress = await handle.query(progressQuery);
          if (watching) onProgress(progress);
        } catch {
          // The workflow may not have started its first task yet, or just finished.
        }
        if (watching) timer = setTimeout(() => void poll(), watch.pollMs ?? 250);
      };
      timer = setTimeout(() => void poll(), 100);
    }
    try {
      const result = await handle.result();
      watching = false;
      if (onProgress) {
        try {
          onProgress(await handle.query(progressQuery));
        } catch {
          // Closed workflows answer queries too, but not if the worker is gone; progress is advisory.
        }
      }
      return result;
    } catch (err) {
      throw toVccrError(err);
    } finally {
      watching = false;
      if (timer) clearTimeout(timer);
    }
  }
}
