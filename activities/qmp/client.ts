// QMP client over a unix socket, modelled on QEMU's python/qemu/qmp (QMPClient + EventListener):
// one reader demultiplexes replies (by id) and events (to every subscriber); any transport or
// protocol failure tears the whole session down and fails everything still waiting, at once. Its parts:
// connect.ts opens the socket, event-hub.ts hands events to streams and waiters, options.ts.
import net from 'node:net';
import { childLogger, type Logger } from '../../node/logger';
import {
  isTypedCommand,
  parseReturn,
  prepareArgs,
  type QmpCommandName,
  type QmpCommandParams,
  type QmpCommandReturn,
} from './commands';
import { excerptOf, QmpArgumentError, QmpCommandError, QmpConnectError, QmpDisconnectedError, QmpError, QmpProtocolError, QmpTimeoutError } from './errors';
import { makeEvent, type EventStreamOptions, type QmpEvent, type QmpEventStream } from './events';
import { EventHub } from './event-hub';
import { errnoCode, nonNegative, onAbort, type ExecuteOptions, type QmpConnectOptions, type QmpVersion } from './options';
import { openSocket } from './connect';
import { DEFAULT_MAX_LINE_BYTES, encodeMessage, LineSplitter } from './framing';
import { parseLine, type IncomingMessage, type QmpGreeting } from './protocol';

type State = 'connecting' | 'ready' | 'closed';

interface PendingCommand {
  command: string;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  timer: NodeJS.Timeout;
  detachAbort: () => void;
}

/** sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL. */
const MAX_UNIX_PATH_BYTES = 107;
/** How many timed-out/aborted command ids we remember, to explain late replies in the logs. */
const ABANDONED_IDS_KEPT = 256;
const LOG_LINE_CHARS = 4096;

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
  readonly #splitter: LineSplitter;

  #state: State = 'connecting';
  #socket: net.Socket | undefined;
  #socketClosed: Promise<void> = Promise.resolve();
  #greeting: QmpGreeting | undefined;
  #greetingWaiter: { resolve: (g: QmpGreeting) => void; reject: (e: unknown) => void } | undefined;
  #nextId = 0;
  readonly #pending = new Map<string, PendingCommand>();
  readonly #abandoned = new Map<string, string>();
  readonly #events: EventHub;
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
    this.#events = new EventHub(this.#commandTimeoutMs, nonNegative(options.maxQueuedEvents, 10_000, 'maxQueuedEvents'));
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
    return this.#events.stream(options);
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
    return this.#events.waitFor(name, predicate, timeoutMs, signal);
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
      { reason: reason.message, pendingCommands: this.#pending.size, eventWaiters: this.#events.waiting },
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
    this.#events.end(reason, () => this.#notConnected());
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
      await openSocket(
        this.socketPath,
        { retryWindowMs: this.#retryWindowMs, retryIntervalMs: this.#retryIntervalMs, connectTimeoutMs: this.#connectTimeoutMs, log: this.#log, signal },
        (socket) => this.#attach(socket),
      );
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
      const event = makeEvent(message.event, message.data, message.timestamp);
      if (this.#log.isLevelEnabled('debug')) this.#log.debug({ event: event.event, data: event.data }, 'qmp event');
      this.#events.dispatch(event);
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
