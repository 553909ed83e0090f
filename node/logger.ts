// Structured logging for activities, workers and the CLI (never imported by workflows:
// workflow code is sandboxed and logs through `log` from @temporalio/workflow).
import pino, { type Logger } from 'pino';

export type { Logger };

const level = process.env.VCCR_LOG_LEVEL ?? 'info';

/** One root logger per process, writing JSON lines to stderr so stdout stays free for program output. */
export const rootLogger: Logger = pino({ level, base: { pid: process.pid } }, pino.destination(2));

export function childLogger(component: string, bindings: Record<string, unknown> = {}): Logger {
  return rootLogger.child({ component, ...bindings });
}
