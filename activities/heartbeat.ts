// Every activity heartbeats while it runs, so the workflow notices within seconds (not at the end of a
// start-to-close timeout) when the worker running it dies — while it may be holding the cluster paused.
import { Context } from '@temporalio/activity';

export const HEARTBEAT_EVERY_MS = 500;

type AsyncFn = (...args: never[]) => Promise<unknown>;

export function heartbeating<F extends AsyncFn>(fn: F): F {
  const wrapped = async (...args: Parameters<F>): Promise<Awaited<ReturnType<F>>> => {
    const ctx = Context.current();
    const timer = setInterval(() => ctx.heartbeat(), HEARTBEAT_EVERY_MS);
    try {
      return (await fn(...args)) as Awaited<ReturnType<F>>;
    } finally {
      clearInterval(timer);
    }
  };
  return wrapped as unknown as F;
}

/** Wraps every function of an activities object. */
export function allHeartbeating<T extends Record<string, AsyncFn>>(activities: T): T {
  return Object.fromEntries(Object.entries(activities).map(([name, fn]) => [name, heartbeating(fn)])) as T;
}
