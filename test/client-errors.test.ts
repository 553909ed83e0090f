// The client classifies failures by what they are — ApplicationFailure.type, TimeoutFailure.timeoutType,
// the failure and gRPC error classes — never by the words in their messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, ActivityFailure, CancelledFailure, RetryState, TerminatedFailure, TimeoutFailure } from '@temporalio/common';
import { toVccrError, EXIT } from '../client/errors';

const failed = (cause: Error) => new WorkflowFailedError('Workflow execution failed', cause, RetryState.NON_RETRYABLE_FAILURE);

/** What a gRPC call to an unreachable server rejects with (@grpc/grpc-js ServiceError). */
function grpcError(code: number, details: string): Error {
  return Object.assign(new Error(`${code} ${details}`), { code, details, metadata: {} });
}

test('application failures: the innermost known type decides the exit code, the outer message is shown', () => {
  const refusal = ApplicationFailure.nonRetryable('unknown checkpoint nope of cluster c', 'UnknownCheckpoint');
  const e = toVccrError(failed(ApplicationFailure.create({ message: 'restart of c failed in validate: unknown checkpoint nope', type: 'RestartFailed', cause: refusal })));
  assert.equal(e.type, 'UnknownCheckpoint');
  assert.equal(e.exitCode, EXIT.notFound);
  assert.equal(e.message, 'restart of c failed in validate: unknown checkpoint nope');
  // The same words with another type are another failure: the message text is never parsed.
  const worded = toVccrError(failed(ApplicationFailure.nonRetryable('unknown cluster c (busy, timed out, UNAVAILABLE)', 'CheckpointFailed')));
  assert.equal(worded.type, 'CheckpointFailed');
  assert.equal(worded.exitCode, EXIT.failed);
});

test('timeouts, cancellations and terminations are told apart by their failure class', () => {
  const timeout = toVccrError(failed(new ActivityFailure('activity failed', 'pauseVms', '1', RetryState.TIMEOUT, undefined, new TimeoutFailure('activity timed out', undefined, 'SCHEDULE_TO_START'))));
  assert.equal(timeout.type, 'Timeout');
  assert.match(timeout.message, /SCHEDULE_TO_START/);
  assert.equal(toVccrError(failed(new CancelledFailure('cancelled'))).type, 'Cancelled');
  assert.equal(toVccrError(failed(new TerminatedFailure('terminated by hand'))).type, 'Terminated');
});

test('an unreachable server is recognised by its gRPC status, not by words like ECONNREFUSED', () => {
  const unavailable = toVccrError(grpcError(14, 'No connection established'));
  assert.equal(unavailable.exitCode, EXIT.unreachable);
  assert.match(unavailable.message, /--address HOST:PORT/, 'says how to point vccr at a server');
  assert.equal(toVccrError(new Error('wrapped', { cause: grpcError(4, 'Deadline exceeded') })).exitCode, EXIT.unreachable);
  // An error that merely mentions connection trouble is not a connection failure.
  assert.equal(toVccrError(new Error('connect ECONNREFUSED 10.0.0.1:22 (from inside the guest)')).exitCode, EXIT.failed);
  assert.equal(toVccrError(grpcError(3, 'invalid argument')).exitCode, EXIT.failed);
});
