// Errors the client reports, each with the CLI exit code it maps to. A workflow's failure reaches the
// client wrapped (WorkflowFailedError → ApplicationFailure, maybe → ActivityFailure → ...): we dig out
// the innermost ApplicationFailure, whose message is the one-line reason and whose type says what kind.
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';

export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  busy: 3,
  notFound: 4,
  unreachable: 5,
} as const;

const TYPE_EXIT: Record<string, number> = {
  InvalidInput: EXIT.usage,
  ClusterBusy: EXIT.busy,
  ClusterAlreadyUp: EXIT.busy,
  ClusterStillRunning: EXIT.busy,
  UnknownCluster: EXIT.notFound,
  UnknownCheckpoint: EXIT.notFound,
  CheckpointExists: EXIT.busy,
};

export class VccrError extends Error {
  override readonly name = 'VccrError';
  constructor(
    message: string,
    readonly type: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

function innermostApplicationFailure(err: unknown): ApplicationFailure | undefined {
  let found: ApplicationFailure | undefined;
  let e: unknown = err;
  for (let i = 0; i < 10 && e instanceof Error; i++) {
    if (e instanceof ApplicationFailure) found = e;
    e = (e as Error & { cause?: unknown }).cause;
  }
  return found;
}

/** Any error from Temporal or our workflows → a VccrError with a clear message and an exit code. */
export function toVccrError(err: unknown): VccrError {
  if (err instanceof VccrError) return err;
  if (err instanceof WorkflowNotFoundError) return new VccrError(err.message, 'NotFound', EXIT.notFound);
  const failure = innermostApplicationFailure(err);
  if (failure) {
    // The outermost ApplicationFailure carries the full context ("checkpoint X failed in save: ...").
    const outer = err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure ? err.cause : failure;
    // The innermost type says what kind of refusal it was (the outer one only that the operation failed).
    const inner = failure.type && failure.type in TYPE_EXIT ? failure.type : undefined;
    const type = inner ?? outer.type ?? failure.type ?? 'Failed';
    return new VccrError(outer.message, type, TYPE_EXIT[type] ?? EXIT.failed);
  }
  const message = err instanceof Error ? err.message : String(err);
  if (/ECONNREFUSED|UNAVAILABLE|Failed to connect|connect ETIMEDOUT|DEADLINE_EXCEEDED/i.test(message)) {
    return new VccrError(`cannot reach Temporal: ${message}`, 'Unreachable', EXIT.unreachable);
  }
  return new VccrError(message, 'Failed', EXIT.failed);
}
