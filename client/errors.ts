// Errors the client reports, each with the CLI exit code it maps to. A workflow's failure reaches the
// client wrapped (WorkflowFailedError → ApplicationFailure, maybe → ActivityFailure → ...): we dig out
// the innermost ApplicationFailure, whose message is the one-line reason and whose type says what kind.
import { WorkflowFailedError, WorkflowNotFoundError, isGrpcServiceError } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure, TerminatedFailure, TimeoutFailure } from '@temporalio/common';
import { howToPointAtTemporal } from '../node/temporal-config';

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

/** The chain of causes of an error, outermost first. */
function causes(err: unknown): Error[] {
  const chain: Error[] = [];
  for (let e: unknown = err; e instanceof Error && chain.length < 10; e = (e as Error & { cause?: unknown }).cause) chain.push(e);
  return chain;
}

// gRPC status codes meaning "the server could not be reached or did not answer in time".
const GRPC_UNAVAILABLE = 14;
const GRPC_DEADLINE_EXCEEDED = 4;

/**
 * Any error from Temporal or our workflows → a VccrError with a clear message and an exit code. Failures
 * are classified by what they are — ApplicationFailure.type, TimeoutFailure.timeoutType, the failure and
 * gRPC error classes — never by their message text.
 */
export function toVccrError(err: unknown): VccrError {
  if (err instanceof VccrError) return err;
  if (err instanceof WorkflowNotFoundError) return new VccrError(err.message, 'NotFound', EXIT.notFound);
  const chain = causes(err);
  const applicationFailures = chain.filter((e): e is ApplicationFailure => e instanceof ApplicationFailure);
  const failure = applicationFailures.at(-1);
  if (failure) {
    // The outermost ApplicationFailure carries the full context ("checkpoint X failed in save: ...").
    const outer = err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure ? err.cause : failure;
    // The innermost type says what kind of refusal it was (the outer one only that the operation failed).
    const inner = failure.type && failure.type in TYPE_EXIT ? failure.type : undefined;
    const type = inner ?? outer.type ?? failure.type ?? 'Failed';
    return new VccrError(outer.message, type, TYPE_EXIT[type] ?? EXIT.failed);
  }
  const timeout = chain.find((e): e is TimeoutFailure => e instanceof TimeoutFailure);
  if (timeout) return new VccrError(`timed out (${timeout.timeoutType ?? 'unknown timeout'}): ${chain[0]?.message ?? timeout.message}`, 'Timeout', EXIT.failed);
  if (chain.some((e) => e instanceof TerminatedFailure)) return new VccrError(`the operation was terminated: ${chain[0]?.message ?? ''}`, 'Terminated', EXIT.failed);
  if (chain.some((e) => e instanceof CancelledFailure)) return new VccrError(`the operation was cancelled: ${chain[0]?.message ?? ''}`, 'Cancelled', EXIT.failed);
  const grpc = chain.find(isGrpcServiceError);
  if (grpc && (grpc.code === GRPC_UNAVAILABLE || grpc.code === GRPC_DEADLINE_EXCEEDED)) {
    return new VccrError(`cannot reach Temporal: ${grpc.details || grpc.message}\n  ${howToPointAtTemporal('vccr')}`, 'Unreachable', EXIT.unreachable);
  }
  const message = err instanceof Error ? err.message : String(err);
  return new VccrError(message, 'Failed', EXIT.failed);
}
