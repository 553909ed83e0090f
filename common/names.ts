// Every name that ends up in a path, a task queue, a workflow id or a QEMU argument is checked against
// one of these patterns first. None of them admits '/', '..', ',', whitespace or shell metacharacters.
import { z } from 'zod';

/** Cluster, VM, host, disk and NIC names: DNS-label-like, 1–32 characters. */
export const NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;
export const nameSchema = z
  .string()
  .regex(NAME_PATTERN, 'must be 1-32 characters of a-z, 0-9 and "-", starting and ending with a letter or digit');

/** Checkpoint ids: start with a letter or digit, then letters, digits, '.', '_' or '-'; at most 64. */
export const CHECKPOINT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const checkpointIdSchema = z
  .string()
  .regex(CHECKPOINT_ID_PATTERN, 'must be 1-64 characters of A-Z, a-z, 0-9, ".", "_" and "-", starting with a letter or digit');

/** Temporal task queues we create or accept. */
export const taskQueueSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, 'must be 1-100 characters of letters, digits, ".", "_" and "-"');

/**
 * Absolute, normalised paths that are safe to hand to QEMU (which splits its options on ',') and to
 * qemu-img: no '..' or '.' components, no '//' and no characters outside [A-Za-z0-9._+-/].
 */
export const absolutePathSchema = z
  .string()
  .max(1024, 'must be at most 1024 characters')
  .regex(/^\/[A-Za-z0-9._+\-/]*$/, 'must be an absolute path of letters, digits and "._+-/" only')
  .refine((p) => !p.split('/').some((part) => part === '.' || part === '..'), 'must not contain "." or ".." components')
  .refine((p) => !p.includes('//'), 'must not contain "//"');

/** ck-<UTC yyyymmdd>-<hhmmss>-<6 random hex>: sorts by time, and two at the same second still differ. */
export function defaultCheckpointId(now: number, random: string): string {
  const iso = new Date(now).toISOString(); // 2026-11-25T18:48:00.123Z
  const stamp = `${iso.slice(0, 10).replace(/-/g, '')}-${iso.slice(11, 19).replace(/:/g, '')}`;
  return `ck-${stamp}-${random.replace(/[^0-9a-f]/g, '').slice(0, 6)}`;
}
