// The QMP client's event side: every event QEMU sends goes to each subscribed stream (events()) and to each
// one-shot waiter (waitForEvent()) it matches. When the session ends, streams end and waiters fail at once.
import type { QmpError } from './errors';
import { QmpEventStream, type EventStreamOptions, type QmpEvent } from './events';
import { nonNegative, onAbort } from './options';
import { QmpTimeoutError } from './errors';

/** What the hub needs from a QmpEventStream, whatever its type parameter. */
interface EventSink {
  deliver(event: QmpEvent): void;
  end(): void;
}

interface EventWaiter {
  name: string;
  predicate: ((event: QmpEvent) => boolean) | undefined;
  resolve: (event: QmpEvent) => void;
  reject: (error: unknown) => void;
  timer: NodeJS.Timeout;
  detachAbort: () => void;
}

export class EventHub {
  readonly #streams = new Set<EventSink>();
  readonly #waiters = new Set<EventWaiter>();
  /** Set once the session has ended: the error a late waiter gets. */
  #ended: (() => QmpError) | undefined;

  constructor(
    private readonly defaultTimeoutMs: number,
    private readonly maxQueued: number,
  ) {}

  get waiting(): number {
    return this.#waiters.size;
  }

  /** A new subscription (already ended if the session has). */
  stream<N extends string>(options: EventStreamOptions<N>): QmpEventStream<N> {
    const stream: QmpEventStream<N> = new QmpEventStream<N>({ maxQueued: this.maxQueued, ...options }, () => this.#streams.delete(stream));
    if (this.#ended) stream.end();
    else this.#streams.add(stream);
    return stream;
  }

  /** The first matching event after this call (see QmpClient.waitForEvent). */
  waitFor<N extends string>(name: N, predicate?: (event: QmpEvent<N>) => boolean, timeoutMs?: number, signal?: AbortSignal): Promise<QmpEvent<N>> {
    const promise = new Promise<QmpEvent<N>>((resolve, reject) => {
      if (this.#ended) {
        reject(this.#ended());
        return;
      }
      let ms: number;
      try {
        ms = nonNegative(timeoutMs, this.defaultTimeoutMs, 'timeoutMs');
      } catch (err) {
        reject(err);
        return;
      }
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const waiter: EventWaiter = {
        name,
        predicate: predicate as ((event: QmpEvent) => boolean) | undefined,
        resolve: resolve as (event: QmpEvent) => void,
        reject,
        timer: setTimeout(() => {
          this.#drop(waiter);
          reject(new QmpTimeoutError(`event:${name}`, ms, 'no matching event'));
        }, ms),
        detachAbort: onAbort(signal, () => {
          this.#drop(waiter);
          reject(signal?.reason);
        }),
      };
      this.#waiters.add(waiter);
    });
    promise.catch(() => undefined);
    return promise;
  }

  dispatch(event: QmpEvent): void {
    for (const stream of [...this.#streams]) stream.deliver(event);
    for (const waiter of [...this.#waiters]) {
      if (waiter.name !== event.event) continue;
      let matches: boolean;
      try {
        matches = waiter.predicate ? waiter.predicate(event) : true;
      } catch (err) {
        this.#drop(waiter);
        waiter.reject(err);
        continue;
      }
      if (matches) {
        this.#drop(waiter);
        waiter.resolve(event);
      }
    }
  }

  /** The session ended for `reason`: fail every waiter, end every stream; later waiters get `lateError()`. */
  end(reason: QmpError, lateError: () => QmpError): void {
    this.#ended = lateError;
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const waiter of waiters) {
      clearTimeout(waiter.timer);
      waiter.detachAbort();
      waiter.reject(reason);
    }
    for (const stream of [...this.#streams]) stream.end();
    this.#streams.clear();
  }

  #drop(waiter: EventWaiter): void {
    this.#waiters.delete(waiter);
    clearTimeout(waiter.timer);
    waiter.detachAbort();
  }
}
