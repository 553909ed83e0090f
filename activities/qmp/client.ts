// QMP client over a unix socket, modelled on QEMU's python/qemu/qmp (QMPClient + EventListener):
// one reader demultiplexes replies (by id) and events (to every subscriber); any transport or
// protocol failure tears the whole session down and fails everything still waiting, at once.
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { childLogger, type Logger } from '../../node/logger';
import {
  isTypedCommand,
  parseReturn,
  prepareArgs,
  type QmpCommandName,
  type QmpCommandParams,
  type QmpCommandReturn,
} from './commands';
import {
  excerptOf,
  QmpArgumentError,
  QmpCommandError,
  QmpConnectError,
  QmpDisconnectedError,
  QmpError,
  QmpProtocolError,
  QmpTimeoutError,
} from './errors';
import { makeEvent, QmpEventStream, type EventStreamOptions, type QmpEvent } from './events';
import { DEFAULT_MAX_LINE_BYTES, encodeMessage, LineSplitter } from './framing';
import { parseLine, type IncomingMessage, type QmpGreeting } from './protocol';

export interface QmpConnectOptions {
  /**
   * Keep retrying while the socket does not exist yet or refuses connections (ENOENT, ECONNREFUSED,
   * EAGAIN), for up to this many ms after connect() was called: QEMU may still be creating it.
   * Default 0: a single attempt.
   */
  retryWindowMs?: number;
  /** Pause between attempts inside the retry window (default 50 ms). */
  retryIntervalMs?: number;
  /**
   * Deadline for each attempt's socket connect, and then for the handshake (greeting +
   * qmp_capabilities) once connected. Default 5000 ms. QEMU serves one QMP client per monitor:
   * while another client is attached, a second one connects but gets no greeting and hits this.
   */
  connectTimeoutMs?: number;
  /** Default per-command timeout for execute()/command() (default 30 000 ms). */
  commandTimeoutMs?: number;
  /** Longest accepted message (default 16 MiB); a longer one is a protocol violation. */
  maxLineBytes?: number;
  /** Default for how many unread events one events() stream buffers (default 10 000). */
  maxQueuedEvents?: number;
  /** Label for log lines, e.g. the VM id. */
  name?: string;
  /** Parent logger (default: childLogger('qmp')). Traffic is logged at debug level. */
  logger?: Logger;
  /** Aborts connect() (not the connection once established: use close() for that). */
  signal?: AbortSignal;
}

export interface ExecuteOptions {
  /** Per-command timeout (default: the client's commandTimeoutMs). */
  timeoutMs?: number;
  /** Stop waiting for the reply (rejects with signal.reason); QEMU may still run the command. */
  signal?: AbortSignal;
}

export interface QmpVersion {
  major: number;
  minor: number;
  micro: number;
  /** Distribution package string, e.g. "Debian 1:7.2+dfsg-7+deb12u18". */
  package: string;
}

type State = 'connecting' | 'ready' | 'closed';

interface PendingCommand {
  command: string;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  timer: NodeJS.Timeout;
  detachAbort: () => void;
}

/** What the client needs from a QmpEventStream, whatever its type parameter. */
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

const RETRYABLE_CONNECT_CODES = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN']);
/** sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL. */
const MAX_UNIX_PATH_BYTES = 107;
/** How many timed-out/aborted command ids we remember, to explain late replies in the logs. */
const ABANDONED_IDS_KEPT = 256;
const LOG_LINE_CHARS = 4096;

/** setTimeout() silently turns longer delays into 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function nonNegative(value: number | undefined, fallback: number, what: string): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v < 0 || v > MAX_TIMER_MS) {
    throw new RangeError(`${what} must be a number of ms in [0, ${MAX_TIMER_MS}], got ${v}`);
  }
  return v;
}

function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

function onAbort(signal: AbortSignal | undefined, handler: () => void): () => void {
  if (!signal) return () => undefined;
  signal.addEventListener('abort', handler, { once: true });
  return () => signal.removeEventListener('abort', handler);
}

/**
 * A negotiated QMP session with one QEMU process.
 *
 * ```ts
 * const qmp = await QmpClient.connect('/run/vccr/vm1/qmp.sock', { retryWindowMs: 5000, name: 'vm1' });
 * const stopped = qmp.waitForEvent('STOP', undefined, 10_000); // register BEFORE issuing the command
 * await qmp.command('stop');
 * await stopped;
 * const { status } = await qmp.command('query-status');
 * await qmp.close();
 * ```
 *
 * Failure semantics:
 * - A command QEMU rejects → QmpCommandError; the session is unaffected.
 * - A command without reply in time → QmpTimeoutError; the session stays open and usable (QEMU
 *   runs monitor commands one at a time, so the command may still be executing and later ones
 *   queue behind it; a late reply is logged and dropped). Callers that cannot tolerate an unknown
 *   outcome should re-query state, or close() the client.
 * - The socket ends or errors (QEMU exited or was killed) → every pending command and event
 *   waiter rejects at once with QmpDisconnectedError, event streams end, `closed` resolves, and
 *   every later call rejects with QmpDisconnectedError.
 * - The peer violates the protocol → the session is torn down the same way, but pending commands
 *   and waiters reject with the QmpProtocolError itself.
 */
export class QmpClient {
  readonly socketPath: string;

  readonly #log: Logger;
  readonly #connectTimeoutMs: number;
  readonly #retryWindowMs: number;
  readonly #retryIntervalMs: number;
  readonly #commandTimeoutMs: number;
  readonly #maxQueuedEvents: number;
  readonly #splitter: LineSplitter;

  #state: State = 'connecting';
  #socket: net.Socket | undefined;
  #socketClosed: Promise<void> = Promise.resolve();
  #greeting: QmpGreeting | undefined;
  #greetingWaiter: { resolve: (g: QmpGreeting) => void; reject: (e: unknown) => void } | undefined;
  #nextId = 0;
  readonly #pending = new Map<string, PendingCommand>();
  readonly #abandoned = new Map<string, string>();
  readonly #streams = new Set<EventSink>();
  readonly #waiters = new Set<EventWaiter>();
  #closeReason: QmpError | undefined;
  #closedByUs = false;
  readonly #closed: Promise<QmpError>;
  #resolveClosed!: (reason: QmpError) => void;

  private constructor(socketPath: string, options: QmpConnectOptions) {
    this.socketPath = socketPath;
    this.#connectTimeoutMs = nonNegative(options.connectTimeoutMs, 5000, 'connectTimeoutMs');
    this.#retryWindowMs = nonNegative(options.retryWindowMs, 0, 'retryWindowMs');
    this.#retryIntervalMs = Math.max(1, nonNegative(options.retryIntervalMs, 50, 'retryIntervalMs'));
    this.#commandTimeoutMs = nonNegative(options.commandTimeoutMs, 30_000, 'commandTimeoutMs');
    this.#maxQueuedEvents = nonNegative(options.maxQueuedEvents, 10_000, 'maxQueuedEvents');
    this.#splitter = new LineSplitter(options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
    const bindings = options.name === undefined ? { socketPath } : { socketPath, vm: options.name };
    this.#log = (options.logger ?? childLogger('qmp')).child(bindings);
    this.#closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  /**
   * Connect to a QMP unix socket, read the greeting and negotiate capabilities.
   * Every failure is a QmpConnectError (its `reason` says which step failed, `cause` the details);
   * invalid options reject with a RangeError.
   */
  static async connect(socketPath: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const client = new QmpClient(socketPath, options);
    await client.#establish(options.signal);
    return client;
  }

  // -------------------------------------------------------------------------------------------
  // Session state

  /** The server's greeting. */
  get greeting(): QmpGreeting {
    if (!this.#greeting) throw new QmpError('no QMP greeting received');
    return this.#greeting;
  }

  get version(): QmpVersion {
    const { version } = this.greeting.QMP;
    return { ...version.qemu, package: version.package };
  }

  /** Capabilities the server offered in its greeting (e.g. ["oob"]); none are enabled by us. */
  get capabilities(): readonly string[] {
    return this.greeting.QMP.capabilities;
  }

  get connected(): boolean {
    return this.#state === 'ready';
  }

  /** Why the session ended (undefined while connected). */
  get closeReason(): QmpError | undefined {
    return this.#closeReason;
  }

  /** Resolves (never rejects) with the reason once the session has ended, for whatever cause. */
  get closed(): Promise<QmpError> {
    return this.#closed;
  }

  // -------------------------------------------------------------------------------------------
  // Commands

  /**
   * Run any QMP command and return its raw `return` value (unvalidated). Each command gets a
   * unique id and its reply is matched by id, so concurrent calls are safe.
   * Rejects with QmpCommandError, QmpTimeoutError, QmpDisconnectedError or QmpProtocolError.
   */
  execute(command: string, args?: Record<string, unknown>, options: ExecuteOptions = {}): Promise<unknown> {
    if (this.#state !== 'ready') return Promise.reject(this.#notConnected());
    return this.#send(command, args, options);
  }

  /**
   * Run a command of the typed layer (see QMP_COMMANDS): arguments are validated before sending
   * (QmpArgumentError, nothing sent) and the reply is validated on arrival (QmpReplyValidationError).
   */
  async command<K extends QmpCommandName>(
    name: K,
    ...params: QmpCommandParams<K, ExecuteOptions>
  ): Promise<QmpCommandReturn<K>> {
    if (!isTypedCommand(name)) throw new QmpArgumentError(String(name), 'not a command of the typed layer');
    const [args, options] = params;
    const wireArgs = prepareArgs(name, args);
    const raw = await this.execute(name, wireArgs, options ?? {});
    return parseReturn(name, raw);
  }

  #send(command: string, args: Record<string, unknown> | undefined, options: ExecuteOptions): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      const socket = this.#socket;
      if (!socket) {
        reject(this.#notConnected());
        return;
      }
      if (typeof command !== 'string' || command.length === 0) {
        reject(new QmpArgumentError(String(command), 'command name must be a non-empty string'));
        return;
      }
      let timeoutMs: number;
      try {
        timeoutMs = nonNegative(options.timeoutMs, this.#commandTimeoutMs, 'timeoutMs');
      } catch (err) {
        reject(err);
        return;
      }
      if (options.signal?.aborted) {
        reject(options.signal.reason);
        return;
      }
      const id = `vccr-${++this.#nextId}`;
      let line: string;
      try {
        line = encodeMessage(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id });
      } catch (err) {
        reject(new QmpArgumentError(command, 'arguments are not JSON-serializable', { cause: err }));
        return;
      }

      const abandon = (error: unknown, why: string): void => {
        const entry = this.#pending.get(id);
        if (!entry) return;
        this.#pending.delete(id);
        clearTimeout(entry.timer);
        entry.detachAbort();
        this.#abandoned.set(id, command);
        if (this.#abandoned.size > ABANDONED_IDS_KEPT) {
          const oldest = this.#abandoned.keys().next();
          if (!oldest.done) this.#abandoned.delete(oldest.value);
        }
        this.#log.warn({ command, id, timeoutMs }, `QMP command ${why}; a late reply will be dropped`);
        reject(error);
      };
      const timer = setTimeout(
        () => abandon(new QmpTimeoutError(command, timeoutMs, 'no reply (QEMU may still complete it)'), 'timed out'),
        timeoutMs,
      );
      const detachAbort = onAbort(options.signal, () => abandon(options.signal?.reason, 'aborted'));
      this.#pending.set(id, { command, resolve, reject, timer, detachAbort });

      if (this.#log.isLevelEnabled('debug')) this.#log.debug({ id, out: line.trimEnd().slice(0, LOG_LINE_CHARS) }, 'qmp >');
      socket.write(line);
      // A failed write surfaces as a socket 'error' event, which tears the session down.
    });
  }

  // -------------------------------------------------------------------------------------------
  // Events

  /**
   * Subscribe to events. The stream is registered immediately (before the first next()), so it
   * sees every event emitted after this call; several independent streams may coexist. It ends
   * when the session closes (after delivering what it had buffered); break out of `for await`
   * (or call return()) to unsubscribe.
   */
  events<N extends string = string>(options: EventStreamOptions<N> = {}): QmpEventStream<N> {
    const stream: QmpEventStream<N> = new QmpEventStream<N>({ maxQueued: this.#maxQueuedEvents, ...options }, () =>
      this.#streams.delete(stream),
    );
    if (this.#state === 'closed') stream.end();
    else this.#streams.add(stream);
    return stream;
  }

  /**
   * Resolve with the first event named `name` (and accepted by `predicate`) emitted AFTER this
   * call. The waiter is registered synchronously, so to catch the event a command causes, start
   * waiting before executing it, then await both:
   *
   * ```ts
   * const resumed = qmp.waitForEvent('RESUME', undefined, 5000);
   * await qmp.command('cont');
   * await resumed;
   * ```
   *
   * (QEMU 7.2 sends STOP/RESUME *before* the reply to stop/cont.) Rejects with QmpTimeoutError
   * after `timeoutMs` (default: commandTimeoutMs), with QmpDisconnectedError/QmpProtocolError
   * when the session ends, with signal.reason on abort, or with whatever `predicate` throws.
   * The returned promise is marked handled: a waiter abandoned because the command failed cannot
   * crash the process with an unhandled rejection; it just settles at its timeout.
   */
  waitForEvent<N extends string>(
    name: N,
    predicate?: (event: QmpEvent<N>) => boolean,
    timeoutMs?: number,
    signal?: AbortSignal,
  ): Promise<QmpEvent<N>> {
    const promise = new Promise<QmpEvent<N>>((resolve, reject) => {
      if (this.#state === 'closed') {
        reject(this.#notConnected());
        return;
      }
      let ms: number;
      try {
        ms = nonNegative(timeoutMs, this.#commandTimeoutMs, 'timeoutMs');
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
          this.#dropWaiter(waiter);
          reject(new QmpTimeoutError(`event:${name}`, ms, 'no matching event'));
        }, ms),
        detachAbort: onAbort(signal, () => {
          this.#dropWaiter(waiter);
          reject(signal?.reason);
        }),
      };
      this.#waiters.add(waiter);
    });
    promise.catch(() => undefined);
    return promise;
  }

  #dropWaiter(waiter: EventWaiter): void {
    this.#waiters.delete(waiter);
    clearTimeout(waiter.timer);
    waiter.detachAbort();
  }

  #dispatchEvent(event: QmpEvent): void {
    if (this.#log.isLevelEnabled('debug')) this.#log.debug({ event: event.event, data: event.data }, 'qmp event');
    for (const stream of [...this.#streams]) stream.deliver(event);
    for (const waiter of [...this.#waiters]) {
      if (waiter.name !== event.event) continue;
      let matches: boolean;
      try {
        matches = waiter.predicate ? waiter.predicate(event) : true;
      } catch (err) {
        this.#dropWaiter(waiter);
        waiter.reject(err);
        continue;
      }
      if (matches) {
        this.#dropWaiter(waiter);
        waiter.resolve(event);
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Closing

  /** End the session. Idempotent; resolves once the socket is fully closed. */
  async close(): Promise<void> {
    if (this.#state !== 'closed') this.#closedByUs = true;
    this.#teardown(new QmpDisconnectedError('closed by client'));
    await this.#socketClosed;
  }

  #isClosed(): boolean {
    return this.#state === 'closed';
  }

  #notConnected(): QmpDisconnectedError {
    const reason = this.#closeReason;
    if (reason instanceof QmpDisconnectedError) return reason;
    return new QmpDisconnectedError(reason ? `session ended: ${reason.message}` : 'not connected', { cause: reason });
  }

  /** End the session for `reason`: idempotent; fails everything that is waiting. */
  #teardown(reason: QmpError): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#closeReason = reason;
    this.#socket?.destroy();

    // Our own close() is routine; QEMU going away is worth a line; a protocol violation is an error.
    const level = reason instanceof QmpProtocolError ? 'error' : this.#closedByUs ? 'debug' : 'info';
    this.#log[level](
      { reason: reason.message, pendingCommands: this.#pending.size, eventWaiters: this.#waiters.size },
      'QMP session ended',
    );

    const greetingWaiter = this.#greetingWaiter;
    this.#greetingWaiter = undefined;
    greetingWaiter?.reject(reason);

    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const entry of pending) {
      clearTimeout(entry.timer);
      entry.detachAbort();
      entry.reject(reason);
    }
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const waiter of waiters) {
      clearTimeout(waiter.timer);
      waiter.detachAbort();
      waiter.reject(reason);
    }
    for (const stream of [...this.#streams]) stream.end();
    this.#streams.clear();
    this.#resolveClosed(reason);
  }

  // -------------------------------------------------------------------------------------------
  // Connection establishment

  async #establish(signal: AbortSignal | undefined): Promise<void> {
    const started = Date.now();
    try {
      if (Buffer.byteLength(this.socketPath) > MAX_UNIX_PATH_BYTES) {
        throw new QmpConnectError(this.socketPath, 'invalid-path', `longer than ${MAX_UNIX_PATH_BYTES} bytes`);
      }
      await this.#openSocket(signal);
      await this.#handshake(signal);
      this.#state = 'ready';
      this.#log.debug({ version: this.version, ms: Date.now() - started }, 'QMP session negotiated');
    } catch (err) {
      const error =
        err instanceof QmpConnectError
          ? err
          : new QmpConnectError(this.socketPath, 'handshake-failed', err instanceof Error ? err.message : String(err), {
              cause: err,
            });
      this.#teardown(error);
      await this.#socketClosed;
      throw error;
    }
  }

  /** Connect, retrying within the retry window; the connected socket is attached to this client. */
  async #openSocket(signal: AbortSignal | undefined): Promise<void> {
    const deadline = Date.now() + this.#retryWindowMs;
    for (let attempt = 1; ; attempt++) {
      if (signal?.aborted) throw new QmpConnectError(this.socketPath, 'aborted', 'connect aborted', { cause: signal.reason });
      try {
        return await this.#connectOnce(signal);
      } catch (err) {
        if (err instanceof QmpConnectError) throw err;
        const code = errnoCode(err) ?? 'unknown';
        if (!RETRYABLE_CONNECT_CODES.has(code)) {
          throw new QmpConnectError(this.socketPath, 'socket-error', `${code}: ${(err as Error).message}`, { cause: err });
        }
        const remaining = deadline - Date.now();
        if (remaining <= 0) {
          throw new QmpConnectError(
            this.socketPath,
            'socket-unavailable',
            `${code} (${attempt} attempt(s), retry window ${this.#retryWindowMs} ms)`,
            { cause: err },
          );
        }
        this.#log.debug({ code, attempt, remaining }, 'QMP socket not ready, retrying');
        try {
          await sleep(Math.min(this.#retryIntervalMs, remaining), undefined, { signal });
        } catch (abortErr) {
          throw new QmpConnectError(this.socketPath, 'aborted', 'connect aborted', { cause: abortErr });
        }
      }
    }
  }

  #connectOnce(signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const socket = net.createConnection({ path: this.socketPath });
      const finish = (error: unknown): void => {
        clearTimeout(timer);
        detachAbort();
        socket.off('connect', onConnect);
        socket.off('error', onError);
        if (error === undefined) {
          this.#attach(socket); // synchronously, so no socket event can go unheard
          resolve();
        } else {
          socket.destroy();
          reject(error);
        }
      };
      const onConnect = (): void => finish(undefined);
      const onError = (err: Error): void => finish(err);
      const timer = setTimeout(
        () => finish(new QmpConnectError(this.socketPath, 'socket-error', `socket connect took over ${this.#connectTimeoutMs} ms`)),
        this.#connectTimeoutMs,
      );
      const detachAbort = onAbort(signal, () =>
        finish(new QmpConnectError(this.socketPath, 'aborted', 'connect aborted', { cause: signal?.reason })),
      );
      socket.once('connect', onConnect);
      socket.once('error', onError);
    });
  }

  #attach(socket: net.Socket): void {
    this.#socket = socket;
    this.#socketClosed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.#teardown(new QmpDisconnectedError('connection closed by peer')));
    socket.on('close', () => this.#teardown(new QmpDisconnectedError('socket closed')));
    socket.on('error', (err: Error) =>
      this.#teardown(new QmpDisconnectedError(`socket error: ${errnoCode(err) ?? err.message}`, { cause: err })),
    );
  }

  async #handshake(signal: AbortSignal | undefined): Promise<void> {
    const ms = this.#connectTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    let detachAbort: () => void = () => undefined;
    const guard = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new QmpConnectError(
              this.socketPath,
              'handshake-timeout',
              `no greeting/negotiation within ${ms} ms (is another QMP client attached to this monitor?)`,
            ),
          ),
        ms,
      );
      detachAbort = onAbort(signal, () =>
        reject(new QmpConnectError(this.socketPath, 'aborted', 'connect aborted', { cause: signal?.reason })),
      );
    });
    guard.catch(() => undefined);
    try {
      const greeting = await Promise.race([
        this.#greeting ??
          new Promise<QmpGreeting>((resolve, reject) => {
            this.#greetingWaiter = { resolve, reject };
          }),
        guard,
      ]);
      this.#log.debug({ greeting }, 'QMP greeting');
      // We do not enable 'oob': the product never needs out-of-band execution.
      await Promise.race([this.#send('qmp_capabilities', undefined, { timeoutMs: ms }), guard]);
    } finally {
      clearTimeout(timer);
      detachAbort();
    }
  }

  // -------------------------------------------------------------------------------------------
  // Incoming traffic

  #onData(chunk: Buffer): void {
    if (this.#state === 'closed') return;
    let lines: string[];
    try {
      lines = this.#splitter.push(chunk);
    } catch (err) {
      this.#teardown(err instanceof QmpError ? err : new QmpProtocolError('framing failed', '', { cause: err }));
      return;
    }
    for (const line of lines) {
      if (this.#isClosed()) return; // a previous line may have torn the session down
      if (this.#log.isLevelEnabled('debug')) this.#log.debug({ in: line.slice(0, LOG_LINE_CHARS) }, 'qmp <');
      try {
        this.#onMessage(parseLine(line), line);
      } catch (err) {
        this.#teardown(err instanceof QmpError ? err : new QmpProtocolError('cannot handle message', excerptOf(line), { cause: err }));
        return;
      }
    }
  }

  #onMessage(message: IncomingMessage, line: string): void {
    if (message.kind === 'greeting') {
      if (this.#greeting !== undefined) throw new QmpProtocolError('unexpected second greeting', excerptOf(line));
      this.#greeting = message.greeting;
      const waiter = this.#greetingWaiter;
      this.#greetingWaiter = undefined;
      waiter?.resolve(message.greeting);
      return;
    }
    if (this.#greeting === undefined) throw new QmpProtocolError('expected a greeting first', excerptOf(line));

    if (message.kind === 'event') {
      this.#dispatchEvent(makeEvent(message.event, message.data, message.timestamp));
      return;
    }

    const entry = typeof message.id === 'string' ? this.#pending.get(message.id) : undefined;
    if (!entry) {
      if (message.kind === 'error' && message.id === undefined) {
        // QEMU answers input it could not parse with an id-less error: the streams are out of
        // step, and there is no safe way to attribute the error (cf. the QMP spec, "Errors").
        throw new QmpProtocolError(`server reported an error without id: ${message.errorClass}: ${message.description}`);
      }
      const abandonedCommand = typeof message.id === 'string' ? this.#abandoned.get(message.id) : undefined;
      if (abandonedCommand !== undefined) {
        this.#abandoned.delete(message.id as string);
        this.#log.warn({ id: message.id, command: abandonedCommand, kind: message.kind }, 'late QMP reply dropped');
      } else {
        this.#log.warn({ id: message.id, reply: excerptOf(line) }, 'QMP reply with unknown id dropped');
      }
      return;
    }
    const id = message.id as string;
    this.#pending.delete(id);
    clearTimeout(entry.timer);
    entry.detachAbort();
    if (message.kind === 'return') entry.resolve(message.value);
    else entry.reject(new QmpCommandError(entry.command, id, message.errorClass, message.description));
  }
}
