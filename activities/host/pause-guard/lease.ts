// Pause leases: one small file per VM (<state-dir>/<cluster>/<vm>/pause-lease.json) saying which checkpoint
// paused it and until when it may stay paused. Read and written by the host worker's watchdog and by the
// detached pause guard (process.ts), which outlives the worker.
//
// States (ARCHITECTURE.md, "Pause leases"):
//   held        written before the stop; the checkpoint's steps may go on while it is held and in time
//   abandoning  the checkpoint was abandoned: every later step of it is refused, but the VM may still be
//               paused, so the watchdog and the guard still resume it at the deadline
//   released    the protocol resumed the VM (written only after its `cont` succeeded), or ended the
//               checkpoint on a VM it never paused
//   expired     the watchdog or the guard resumed the VM at the deadline
// held → abandoning → released|expired, held → released|expired; nothing leaves released or expired.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { replaceFileSync } from '../../../node/fsutil';

export const leaseSchema = z.object({
  checkpointId: z.string(),
  /** The workflow run that paused it: a step of another run with the same checkpoint id is refused. */
  runId: z.string().optional(),
  state: z.enum(['held', 'abandoning', 'released', 'expired']),
  pausedAt: z.number(),
  /** When the host worker's watchdog resumes the VM: a little before the bound itself. */
  deadline: z.number(),
  /** The pause guard acts this long after `deadline` — still before the bound — if the worker did not. */
  guardAfterMs: z.number().default(500),
});

/**
 * Deadlines for a pause bound: the watchdog acts `slack` before the bound and the guard `slack/2` before
 * it, so whichever resumes the VM does so within the bound (the workflow's own undo starts earlier still).
 */
export function leaseTimes(pausedAt: number, boundMs: number): { deadline: number; guardAfterMs: number } {
  const slack = Math.max(200, Math.min(2000, Math.floor(boundMs / 10)));
  return { deadline: pausedAt + boundMs - slack, guardAfterMs: Math.floor(slack / 2) };
}
export type PauseLease = z.infer<typeof leaseSchema>;

/** The VM may still be paused for this lease: the watchdog and the guard must resume it at the deadline. */
export function mayBePaused(lease: PauseLease | undefined): boolean {
  return lease?.state === 'held' || lease?.state === 'abandoning';
}

export const LEASE_FILE = 'pause-lease.json';

export function leasePath(vmDir: string): string {
  return join(vmDir, LEASE_FILE);
}

export function readLease(vmDir: string): PauseLease | undefined {
  const path = leasePath(vmDir);
  if (!existsSync(path)) return undefined;
  try {
    const parsed = leaseSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export function writeLease(vmDir: string, lease: PauseLease): void {
  replaceFileSync(leasePath(vmDir), JSON.stringify(lease));
}
