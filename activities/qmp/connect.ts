// Opening a QMP unix socket: QEMU may still be creating it, so ENOENT, ECONNREFUSED and EAGAIN are retried
// within a window; every failure is a QmpConnectError that says which step failed.
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../node/logger';
import { QmpConnectError } from './errors';
import { errnoCode, onAbort } from './options';

const RETRYABLE_CONNECT_CODES = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN']);

export interface OpenOptions {
  retryWindowMs: number;
  retryIntervalMs: number;
  connectTimeoutMs: number;
  log: Logger;
  signal: AbortSignal | undefined;
}

/**
 * Connects, retrying within the retry window. `attach` gets the connected socket synchronously, in the
 * 'connect' callback itself, so no socket event can go unheard.
 */
export async function openSocket(path: string, options: OpenOptions, attach: (socket: net.Socket) => void): Promise<void> {
  const { signal } = options;
  const deadline = Date.now() + options.retryWindowMs;
  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted) throw new QmpConnectError(path, 'aborted', 'connect aborted', { cause: signal.reason });
    try {
      return await connectOnce(path, options, attach);
    } catch (err) {
      if (err instanceof QmpConnectError) throw err;
      const code = errnoCode(err) ?? 'unknown';
      if (!RETRYABLE_CONNECT_CODES.has(code)) {
        throw new QmpConnectError(path, 'socket-error', `${code}: ${(err as Error).message}`, { cause: err });
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new QmpConnectError(path, 'socket-unavailable', `${code} (${attempt} attempt(s), retry window ${options.retryWindowMs} ms)`, { cause: err });
      }
      options.log.debug({ code, attempt, remaining }, 'QMP socket not ready, retrying');
      try {
        await sleep(Math.min(options.retryIntervalMs, remaining), undefined, { signal });
      } catch (abortErr) {
        throw new QmpConnectError(path, 'aborted', 'connect aborted', { cause: abortErr });
      }
    }
  }
}

function connectOnce(path: string, options: OpenOptions, attach: (socket: net.Socket) => void): Promise<void> {
  const { signal, connectTimeoutMs } = options;
  return new Promise<void>((resolve, reject) => {
    const socket = net.createConnection({ path });
    const finish = (error: unknown): void => {
      clearTimeout(timer);
      detachAbort();
      socket.off('connect', onConnect);
      socket.off('error', onError);
      if (error === undefined) {
        attach(socket);
        resolve();
      } else {
        socket.destroy();
        reject(error);
      }
    };
    const onConnect = (): void => finish(undefined);
    const onError = (err: Error): void => finish(err);
    const timer = setTimeout(() => finish(new QmpConnectError(path, 'socket-error', `socket connect took over ${connectTimeoutMs} ms`)), connectTimeoutMs);
    const detachAbort = onAbort(signal, () => finish(new QmpConnectError(path, 'aborted', 'connect aborted', { cause: signal?.reason })));
    socket.once('connect', onConnect);
    socket.once('error', onError);
  });
}
