// Process helpers (host workers, tests, the demo and benchmarks). A process is identified by its PID *and* its
// start time (field 22 of /proc/<pid>/stat), so a recycled PID is never mistaken for ours.
import { readFileSync } from 'node:fs';

export interface ProcessIdentity {
  pid: number;
  startTime: string;
}

/** The kernel's start time of a process (clock ticks since boot), or undefined if it is gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19]; // field 22 overall; fields[0] here is field 3 (state)
  } catch {
    return undefined;
  }
}

export function identify(pid: number): ProcessIdentity | undefined {
  const startTime = processStartTime(pid);
  return startTime === undefined ? undefined : { pid, startTime };
}

/** True while the exact process (PID + start time) exists and is not a zombie. */
export function isAlive(id: ProcessIdentity): boolean {
  try {
    const stat = readFileSync(`/proc/${id.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] === id.startTime && fields[0] !== 'Z';
  } catch {
    return false;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends `signal`, then SIGKILL if the process is still there after `graceMs`; resolves once it is gone. */
export async function terminate(id: ProcessIdentity, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  if (!isAlive(id)) return;
  try {
    process.kill(id.pid, signal);
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (isAlive(id) && Date.now() < deadline) await sleep(25);
  if (isAlive(id)) {
    try {
      process.kill(id.pid, 'SIGKILL');
    } catch {
      return;
    }
    const hardDeadline = Date.now() + 5000;
    while (isAlive(id) && Date.now() < hardDeadline) await sleep(25);
  }
}

/** Polls `probe` until it returns a value (not undefined) or the deadline passes. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(intervalMs);
  }
}
