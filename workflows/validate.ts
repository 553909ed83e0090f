// Workflow input validation and failure messages: bad input fails the workflow with one line naming the
// field; an activity's failure is reported by its own message, keeping its cause for the client.
import { ApplicationFailure } from '@temporalio/workflow';
import type { z } from 'zod';
import { describeZodError } from '../common/errors';

/** Parses a workflow's input; bad input fails the workflow (not just the task) with a one-line reason. */
export function validateInput<S extends z.ZodType>(schema: S, raw: unknown, workflow: string): z.output<S> {
  const result = schema.safeParse(raw);
  if (!result.success) {
    throw ApplicationFailure.nonRetryable(describeZodError(result.error, `${workflow} input`), 'InvalidInput');
  }
  return result.data;
}

/** A short, human message from whatever an activity or child threw (Temporal wraps activity errors). */
export function reasonOf(err: unknown): string {
  let e: unknown = err;
  // ActivityFailure → cause ApplicationFailure (the activity's own error) carries the real message.
  for (let i = 0; i < 5 && e instanceof Error; i++) {
    const cause = (e as Error & { cause?: unknown }).cause;
    if (cause instanceof Error) e = cause;
    else break;
  }
  return e instanceof Error ? e.message : String(e);
}

/** The workflow's own failure, keeping what caused it (clients read the cause's type: UnknownCheckpoint, ...). */
export function failWith(message: string, type: string, cause: unknown): ApplicationFailure {
  return ApplicationFailure.create({ message, type, nonRetryable: true, ...(cause instanceof Error ? { cause } : {}) });
}
