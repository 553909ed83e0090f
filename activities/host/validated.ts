// Validation at the host worker: a host trusts no caller, so every activity checks its request with its
// schema (requests.ts) before doing anything, and refuses anything else as InvalidRequest, naming the field.
import { ApplicationFailure } from '@temporalio/activity';
import type { z } from 'zod';
import { describeZodError } from '../../common/errors';

/** Runs `step` on the request only once it passed `schema`. */
export function validated<S extends z.ZodType, R>(name: string, schema: S, step: (req: z.output<S>) => Promise<R>): (req: z.input<S>) => Promise<R> {
  return async (raw) => {
    const parsed = schema.safeParse(raw);
    if (!parsed.success) throw ApplicationFailure.nonRetryable(describeZodError(parsed.error, `${name} request`), 'InvalidRequest');
    return step(parsed.data);
  };
}
