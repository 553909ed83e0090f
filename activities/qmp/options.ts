// The QMP client's options and the small helpers its parts share (timeouts, abort signals, errno codes).
import type { Logger } from '../../node/logger';

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

/** setTimeout() silently turns longer delays into 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export function nonNegative(value: number | undefined, fallback: number, what: string): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v < 0 || v > MAX_TIMER_MS) {
    throw new RangeError(`${what} must be a number of ms in [0, ${MAX_TIMER_MS}], got ${v}`);
  }
  return v;
}

export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

export function onAbort(signal: AbortSignal | undefined, handler: () => void): () => void {
  if (!signal) return () => undefined;
  signal.addEventListener('abort', handler, { once: true });
  return () => signal.removeEventListener('abort', handler);
}
