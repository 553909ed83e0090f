// Process-level wiring shared by the workers: SDK logs into pino, the Temporal connection, and a clean
// shutdown on SIGINT/SIGTERM (the SDK drains in-flight tasks).
import { statSync } from 'node:fs';
import { NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { Connection, Client } from '@temporalio/client';
import type { LogLevel, LogMetadata, Logger as SdkLogger } from '@temporalio/common';
import { rootLogger, type Logger } from '../node/logger';
import { howToPointAtTemporal, tlsOption, type TemporalSettings } from '../node/temporal-config';

class PinoSdkLogger implements SdkLogger {
  constructor(private readonly pino: Logger) {}
  log(level: LogLevel, message: string, meta?: LogMetadata): void {
    const target = level === 'TRACE' ? 'trace' : level === 'DEBUG' ? 'debug' : level === 'INFO' ? 'info' : level === 'WARN' ? 'warn' : 'error';
    this.pino[target](meta ?? {}, message);
  }
  trace(message: string, meta?: LogMetadata): void { this.log('TRACE', message, meta); }
  debug(message: string, meta?: LogMetadata): void { this.log('DEBUG', message, meta); }
  info(message: string, meta?: LogMetadata): void { this.log('INFO', message, meta); }
  warn(message: string, meta?: LogMetadata): void { this.log('WARN', message, meta); }
  error(message: string, meta?: LogMetadata): void { this.log('ERROR', message, meta); }
}

export function installSdkLogging(component: string): void {
  Runtime.install({
    logger: new PinoSdkLogger(rootLogger.child({ component })),
    telemetryOptions: { logging: { forward: {}, filter: { core: 'WARN', other: 'WARN' } } },
  });
}

export async function connectWorker(settings: TemporalSettings, program: string): Promise<NativeConnection> {
  const tls = tlsOption(settings);
  try {
    return await NativeConnection.connect({ address: settings.address, ...(tls ? { tls } : {}) });
  } catch (err) {
    throw unreachable(settings, program, err);
  }
}

export async function connectClient(settings: TemporalSettings, program: string): Promise<Client> {
  const tls = tlsOption(settings);
  try {
    const connection = await Connection.connect({ address: settings.address, connectTimeout: 10_000, ...(tls ? { tls } : {}) });
    return new Client({ connection, namespace: settings.namespace });
  } catch (err) {
    throw unreachable(settings, program, err);
  }
}

function unreachable(settings: TemporalSettings, program: string, err: unknown): Error {
  const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return new Error(`cannot reach Temporal at ${settings.address} (${err instanceof Error ? err.message : String(err)}${cause})\n  ${howToPointAtTemporal(program)}`);
}

/**
 * Runs the worker until SIGINT/SIGTERM (the SDK's Runtime catches those and shuts its workers down,
 * letting in-flight tasks finish), then closes everything else.
 */
export async function runUntilSignalled(worker: Worker, log: Logger, cleanup: () => Promise<void>): Promise<void> {
  try {
    await worker.run();
  } finally {
    await cleanup();
    log.info('stopped');
  }
}

/**
 * VCCR_STORE (the environment file's store path) is checked at start, so a store that is not mounted shows
 * up in the worker's log at once rather than in the first checkpoint. `vccr doctor` checks much more.
 */
export function checkConfiguredStore(log: Logger, env: NodeJS.ProcessEnv = process.env): void {
  const store = env.VCCR_STORE;
  if (!store) return;
  let isDir = false;
  try {
    isDir = statSync(store).isDirectory();
  } catch {
    isDir = false;
  }
  if (isDir) log.info({ store }, 'checkpoint store present');
  else log.error({ store }, 'VCCR_STORE is not a folder here: is the shared checkpoint store mounted? (`vccr doctor` checks every host)');
}
