// Error hierarchy of the QMP client. Every error thrown or rejected by this module is a QmpError,
// so callers can `instanceof QmpError` once and then branch on the subclass.
//
//   QmpError
//   ├── QmpConnectError           connect() failed (socket missing/refused, handshake timeout, bad greeting)
//   ├── QmpCommandError           QEMU answered {"error": {"class", "desc"}}
//   ├── QmpTimeoutError           no reply / event within the caller's deadline (connection stays up)
//   ├── QmpDisconnectedError      the connection is gone (peer closed, socket error, close() called)
//   ├── QmpProtocolError          the peer violated QMP (garbage, oversized line, ...); connection torn down
//   ├── QmpArgumentError          a typed command's arguments failed validation; nothing was sent
//   └── QmpReplyValidationError   a typed command's reply did not match its schema; connection stays up

export class QmpError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Why connect() failed. */
export type QmpConnectFailure =
  | 'socket-unavailable' // ENOENT / ECONNREFUSED persisted past the retry window
  | 'socket-error' // any other socket error while connecting
  | 'invalid-path' // the socket path cannot be used (e.g. longer than sun_path)
  | 'handshake-timeout' // connected, but greeting + negotiation did not finish in time
  | 'handshake-failed' // bad greeting, negotiation refused, or peer hung up during the handshake
  | 'aborted'; // the caller's AbortSignal fired

export class QmpConnectError extends QmpError {
  readonly socketPath: string;
  readonly reason: QmpConnectFailure;

  constructor(socketPath: string, reason: QmpConnectFailure, detail: string, options?: { cause?: unknown }) {
    super(`QMP connect to ${socketPath} failed (${reason}): ${detail}`, options);
    this.socketPath = socketPath;
    this.reason = reason;
  }
}

export class QmpCommandError extends QmpError {
  /** QMP error class, e.g. "GenericError", "CommandNotFound", "DeviceNotFound". */
  readonly errorClass: string;
  /** QEMU's human-readable description. */
  readonly description: string;
  readonly command: string;
  readonly id: string;

  constructor(command: string, id: string, errorClass: string, description: string) {
    super(`QMP command '${command}' failed: ${errorClass}: ${description}`);
    this.command = command;
    this.id = id;
    this.errorClass = errorClass;
    this.description = description;
  }
}

export class QmpTimeoutError extends QmpError {
  /** What timed out: a command name, or `event:NAME` for waitForEvent. */
  readonly operation: string;
  readonly timeoutMs: number;

  constructor(operation: string, timeoutMs: number, detail?: string) {
    super(`QMP ${operation} timed out after ${timeoutMs} ms${detail ? `: ${detail}` : ''}`);
    this.operation = operation;
    this.timeoutMs = timeoutMs;
  }
}

export class QmpDisconnectedError extends QmpError {
  constructor(detail: string, options?: { cause?: unknown }) {
    super(`QMP connection lost: ${detail}`, options);
  }
}

export class QmpProtocolError extends QmpError {
  /** The offending input, truncated for logging (may be empty). */
  readonly excerpt: string;

  constructor(detail: string, excerpt = '', options?: { cause?: unknown }) {
    super(`QMP protocol violation: ${detail}${excerpt ? ` (got: ${excerpt})` : ''}`, options);
    this.excerpt = excerpt;
  }
}

export class QmpArgumentError extends QmpError {
  readonly command: string;

  constructor(command: string, detail: string, options?: { cause?: unknown }) {
    super(`invalid arguments for QMP command '${command}': ${detail}`, options);
    this.command = command;
  }
}

export class QmpReplyValidationError extends QmpError {
  readonly command: string;
  /** The raw `return` value that failed validation. */
  readonly reply: unknown;

  constructor(command: string, detail: string, reply: unknown, options?: { cause?: unknown }) {
    super(`unexpected reply to QMP command '${command}': ${detail}`, options);
    this.command = command;
    this.reply = reply;
  }
}

/** Short, single-line rendering of untrusted input for error messages and logs. */
export function excerptOf(text: string, max = 200): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length > max ? `${oneLine.slice(0, max)}…(${oneLine.length} chars)` : oneLine;
}
