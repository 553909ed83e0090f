// Turning validation failures into one line that names the field — never a stack trace.
import type { z } from 'zod';

export function describeZodError(error: z.ZodError, what: string): string {
  const parts = error.issues.slice(0, 5).map((issue) => {
    const path = issue.path
      .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
      .join('');
    return path ? `${path}: ${issue.message}` : issue.message;
  });
  const more = error.issues.length > 5 ? ` (and ${error.issues.length - 5} more)` : '';
  return `invalid ${what}: ${parts.join('; ')}${more}`;
}

/** Parses with `schema`, or throws an Error whose message is the one-line description. */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new InvalidInputError(describeZodError(result.error, what));
  return result.data;
}

export class InvalidInputError extends Error {
  override readonly name = 'InvalidInputError';
}
