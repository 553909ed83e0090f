// QMP events: the typed shape of the events the product reacts to, and the per-subscriber queue
// behind QmpClient.events().
import { z } from 'zod';
import { MigrationStatusSchema } from './commands';
import { excerptOf, QmpError, QmpProtocolError } from './errors';
import type { QmpTimestamp } from './protocol';

/**
 * Payload schemas of the events we rely on. Only fields QEMU has sent for years are required;
 * an event that violates them is a protocol violation. Other events carry `Record<string, unknown>`.
 */
export const KNOWN_EVENT_DATA = {
  STOP: z.looseObject({}),
  RESUME: z.looseObject({}),
  POWERDOWN: z.looseObject({}),
  SHUTDOWN: z.looseObject({ guest: z.boolean(), reason: z.string() }),
  RESET: z.looseObject({ guest: z.boolean(), reason: z.string().optional() }),
  /** Emitted only when the `events` migration capability is on. */
  MIGRATION: z.looseObject({ status: MigrationStatusSchema }),
  /** Emitted only when the `events` migration capability is on; `pass` counts RAM passes. */
  MIGRATION_PASS: z.looseObject({ pass: z.int() }),
  /** A block job ended: `error` is set when it failed (the job's changes to the chain did not happen). */
  BLOCK_JOB_COMPLETED: z.looseObject({ device: z.string(), type: z.string(), error: z.string().optional() }),
} as const;
export type KnownEventName = keyof typeof KNOWN_EVENT_DATA;

export type QmpEventData<N extends string> = N extends KnownEventName
  ? z.output<(typeof KNOWN_EVENT_DATA)[N]>
  : Record<string, unknown>;

export interface QmpEvent<N extends string = string> {
  event: N;
  data: QmpEventData<N>;
  /** As sent by QEMU: gettimeofday() when the event was emitted. */
  timestamp: QmpTimestamp;
}

/** Distributes over a union of names, so `ev.event === 'MIGRATION'` narrows `ev.data`. */
export type AnyQmpEvent<N extends string = string> = N extends string ? QmpEvent<N> : never;

function isKnown(name: string): name is KnownEventName {
  return Object.prototype.hasOwnProperty.call(KNOWN_EVENT_DATA, name);
}

/** Build a QmpEvent, validating the payload of known events (throws QmpProtocolError). */
export function makeEvent(event: string, data: Record<string, unknown>, timestamp: QmpTimestamp): QmpEvent {
  if (isKnown(event)) {
    const parsed = KNOWN_EVENT_DATA[event].safeParse(data);
    if (!parsed.success) {
      throw new QmpProtocolError(`malformed ${event} event: ${z.prettifyError(parsed.error)}`, excerptOf(JSON.stringify(data)));
    }
    return { event, data: parsed.data, timestamp };
  }
  return { event, data, timestamp };
}

/** Milliseconds since the epoch of an event's QEMU timestamp (NaN if QEMU could not read its clock). */
export function eventTimeMs(event: Pick<QmpEvent, 'timestamp'>): number {
  const { seconds, microseconds } = event.timestamp;
  return seconds < 0 ? Number.NaN : seconds * 1000 + microseconds / 1000;
}

export interface EventStreamOptions<N extends string> {
  /** Only deliver events with these names (default: all events). */
  names?: readonly N[];
  /** Events buffered for a slow consumer before the stream fails (default 10 000). */
  maxQueued?: number;
}

/**
 * One subscriber's view of the event stream: every event emitted after it was created, in order.
 * It ends (done) when the connection closes, after the events already queued have been read;
 * `return()` (e.g. `break` in `for await`) unsubscribes.
 */
export class QmpEventStream<N extends string = string> implements AsyncIterableIterator<AnyQmpEvent<N>> {
  readonly #names: ReadonlySet<string> | undefined;
  readonly #maxQueued: number;
  readonly #detach: () => void;
  #queue: AnyQmpEvent<N>[] = [];
  #waiter: { resolve: (r: IteratorResult<AnyQmpEvent<N>>) => void; reject: (e: unknown) => void } | undefined;
  #ended = false;
  #failure: Error | undefined;

  /** @internal created by QmpClient.events() */
  constructor(options: EventStreamOptions<N>, detach: () => void) {
    this.#names = options.names ? new Set(options.names) : undefined;
    this.#maxQueued = options.maxQueued ?? 10_000;
    this.#detach = detach;
  }

  /** @internal */
  deliver(event: QmpEvent): void {
    if (this.#ended || (this.#names && !this.#names.has(event.event))) return;
    const typed = event as AnyQmpEvent<N>;
    if (this.#waiter) {
      const waiter = this.#waiter;
      this.#waiter = undefined;
      waiter.resolve({ value: typed, done: false });
      return;
    }
    if (this.#queue.length >= this.#maxQueued) {
      this.#finish(new QmpError(`event stream overflow: more than ${this.#maxQueued} unread events`));
      return;
    }
    this.#queue.push(typed);
  }

  /** @internal the connection is gone: end after the queue drains. */
  end(): void {
    this.#finish(undefined);
  }

  #finish(failure: Error | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#failure = failure;
    this.#detach();
    if (this.#waiter) {
      const waiter = this.#waiter;
      this.#waiter = undefined;
      if (failure) waiter.reject(failure);
      else waiter.resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<AnyQmpEvent<N>>> {
    const queued = this.#queue.shift();
    if (queued !== undefined) return Promise.resolve({ value: queued, done: false });
    if (this.#ended) {
      const failure = this.#failure;
      this.#failure = undefined; // report an overflow once, then behave as ended
      return failure ? Promise.reject(failure) : Promise.resolve({ value: undefined, done: true });
    }
    if (this.#waiter) return Promise.reject(new QmpError('QmpEventStream.next() called while a previous next() is pending'));
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  /** Unsubscribe; queued events are discarded. */
  return(): Promise<IteratorResult<AnyQmpEvent<N>>> {
    this.#queue = [];
    this.#finish(undefined);
    this.#failure = undefined;
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
