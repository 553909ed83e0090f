// Raw QMP wire messages (QEMU docs/interop/qmp-spec): schemas and classification of incoming
// messages. Only the envelope is validated here; command replies are validated in commands.ts and
// known event payloads in events.ts.
import { z } from 'zod';
import { excerptOf, QmpProtocolError } from './errors';

const nonNegativeInt = z.int().nonnegative();

export const GreetingSchema = z.looseObject({
  QMP: z.looseObject({
    version: z.looseObject({
      qemu: z.looseObject({ major: nonNegativeInt, minor: nonNegativeInt, micro: nonNegativeInt }),
      package: z.string(),
    }),
    capabilities: z.array(z.string()),
  }),
});
export type QmpGreeting = z.infer<typeof GreetingSchema>;

/** QMP timestamps are gettimeofday() at emission; QEMU sends -1/-1 if the clock could not be read. */
export const TimestampSchema = z.looseObject({ seconds: z.int(), microseconds: z.int() });
export type QmpTimestamp = z.infer<typeof TimestampSchema>;

const IdSchema = z.unknown().optional();

export const ReturnMessageSchema = z.looseObject({ return: z.unknown(), id: IdSchema });
export const ErrorMessageSchema = z.looseObject({
  error: z.looseObject({ class: z.string(), desc: z.string() }),
  id: IdSchema,
});
export const EventMessageSchema = z.looseObject({
  event: z.string().min(1),
  timestamp: TimestampSchema,
  data: z.record(z.string(), z.unknown()).optional(),
});

export type IncomingMessage =
  | { kind: 'greeting'; greeting: QmpGreeting }
  | { kind: 'return'; id: unknown; value: unknown }
  | { kind: 'error'; id: unknown; errorClass: string; description: string }
  | { kind: 'event'; event: string; data: Record<string, unknown>; timestamp: QmpTimestamp };

const DISCRIMINATORS = ['QMP', 'return', 'error', 'event'] as const;

/** Parse one line into a classified message; anything else is a QmpProtocolError. */
export function parseLine(line: string): IncomingMessage {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch (err) {
    throw new QmpProtocolError('line is not valid JSON', excerptOf(line), { cause: err });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new QmpProtocolError('message is not a JSON object', excerptOf(line));
  }
  const present = DISCRIMINATORS.filter((key) => Object.prototype.hasOwnProperty.call(json, key));
  if (present.length !== 1) {
    const what = present.length === 0 ? 'none of' : 'more than one of';
    throw new QmpProtocolError(`message has ${what} QMP/return/error/event`, excerptOf(line));
  }
  const invalid = (kind: string, error: z.ZodError): QmpProtocolError =>
    new QmpProtocolError(`malformed ${kind}: ${z.prettifyError(error)}`, excerptOf(line), { cause: error });

  switch (present[0]) {
    case 'QMP': {
      const r = GreetingSchema.safeParse(json);
      if (!r.success) throw invalid('greeting', r.error);
      return { kind: 'greeting', greeting: r.data };
    }
    case 'return': {
      const r = ReturnMessageSchema.safeParse(json);
      if (!r.success) throw invalid('return', r.error);
      return { kind: 'return', id: r.data.id, value: r.data.return };
    }
    case 'error': {
      const r = ErrorMessageSchema.safeParse(json);
      if (!r.success) throw invalid('error reply', r.error);
      return { kind: 'error', id: r.data.id, errorClass: r.data.error.class, description: r.data.error.desc };
    }
    case 'event': {
      const r = EventMessageSchema.safeParse(json);
      if (!r.success) throw invalid('event', r.error);
      return { kind: 'event', event: r.data.event, data: r.data.data ?? {}, timestamp: r.data.timestamp };
    }
    default:
      throw new QmpProtocolError('unclassifiable message', excerptOf(line));
  }
}
