// Pause leases: one small file per VM (<state-dir>/<cluster>/<vm>/pause-lease.json) saying which checkpoint
// paused it and until when it may stay paused. Read and written by the host worker's watchdog and by the
// detached pause guard (workers/pause-guard.ts), which outlives the worker.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomicSync } from '../../common/fsutil';

export const leaseSchema = z.object({
  checkpointId: z.string(),
  state: z.enum(['held', 'released', 'expired']),
  pausedAt: z.number(),
  deadline: z.number(),
});
export type PauseLease = z.infer<typeof leaseSchema>;

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
  writeFileAtomicSync(leasePath(vmDir), JSON.stringify(lease));
}
