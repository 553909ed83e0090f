// Continuous protection: the inputs of the scheduled checkpoint workflow (protectCluster), of the watch
// (watchCluster) and of a recovery (recoverCluster), the retention policy, and the ids they run under.
// Whoever starts them — `vccr protect`, the TypeScript client, a Temporal Schedule, the Web UI — the
// workflow validates its input with these first.
import { z } from 'zod';
import { nameSchema } from './names';
import { checkpointInputSchema } from './workflow-inputs';

const count = z.number().int().min(0).max(100_000);

/**
 * Which checkpoints to keep (restic/borg semantics): the `keepLast` newest; the newest of each of the
 * `keepHourly` most recent hours that have a checkpoint; the newest of each of the `keepDaily` most recent
 * days that have one (UTC). A checkpoint kept by any rule is kept.
 */
export const retentionPolicySchema = z
  .object({ keepLast: count.default(0), keepHourly: count.default(0), keepDaily: count.default(0) })
  .strict()
  .refine((p) => p.keepLast + p.keepHourly + p.keepDaily > 0, 'keep at least one checkpoint (keepLast, keepHourly or keepDaily)');
export type RetentionPolicy = z.output<typeof retentionPolicySchema>;

export const DEFAULT_RETENTION: RetentionPolicy = { keepLast: 6, keepHourly: 0, keepDaily: 0 };

/** Stop-and-save (the cluster is paused while it is saved) or live (saved while it runs, where available). */
export const checkpointModeSchema = z.enum(['stop', 'live']);
export type CheckpointMode = z.output<typeof checkpointModeSchema>;

/** Whether this build's checkpointCluster takes a live mode (the live protocol is a separate piece of work). */
export const LIVE_CHECKPOINTS_AVAILABLE = 'mode' in checkpointInputSchema.shape;

/** Input of protectCluster: the workflow every scheduled action runs. */
export const protectRunInputSchema = z
  .object({
    cluster: nameSchema,
    mode: checkpointModeSchema.default('stop'),
    retention: retentionPolicySchema.default(DEFAULT_RETENTION),
  })
  .strict();
export type ProtectRunInput = z.input<typeof protectRunInputSchema>;

/** How closely the watch looks and how careful it is before it acts. */
export const watchSettingsSchema = z
  .object({
    /** Time between two checks of every VM and host worker. */
    checkEverySeconds: z.number().min(0.5).max(3600).default(5),
    /**
     * How long a host worker may be unreachable (or a VM unresponsive) before it counts as dead: a worker
     * restarted within this time causes no recovery. A QEMU process that exited needs no grace.
     */
    graceSeconds: z.number().min(0).max(3600).default(15),
    /** How long a host worker may take to pick up a check before it counts as not polling. */
    pickupSeconds: z.number().min(1).max(60).default(3),
    /** More recoveries than this within an hour: stop and wait for an operator. */
    maxRecoveriesPerHour: z.number().int().min(1).max(100).default(3),
    /** Wait between consecutive recoveries: backoffSeconds × 2^(recoveries in the last hour − 1). */
    backoffSeconds: z.number().min(0).max(3600).default(10),
  })
  .strict();
export type WatchSettings = z.output<typeof watchSettingsSchema>;

export const watchInputSchema = z
  .object({
    cluster: nameSchema,
    settings: watchSettingsSchema.default(watchSettingsSchema.parse({})),
    /** The watch's own state, carried over by continue-as-new (not for users). */
    carried: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type WatchInput = z.input<typeof watchInputSchema>;

/** What the watch found wrong with one VM or host. */
export const failureSchema = z
  .object({
    kind: z.enum(['vm-exited', 'vm-unresponsive', 'vm-failed', 'host-unreachable']),
    host: nameSchema,
    vm: nameSchema.optional(),
    detail: z.string(),
  })
  .strict();
export type Failure = z.output<typeof failureSchema>;

export const recoverInputSchema = z
  .object({
    cluster: nameSchema,
    /** Hosts whose VMs must come back elsewhere: host → spare host. */
    hostMap: z.record(nameSchema, nameSchema).default({}),
    /** Hosts known to be unreachable: not asked to stop their VMs (each must be remapped). */
    deadHosts: z.array(nameSchema).default([]),
    /** What the watch saw, for the recovery record. */
    failures: z.array(failureSchema).default([]),
    /** Epoch ms when the failure was first noticed. */
    noticedAt: z.number().int().nonnegative().optional(),
  })
  .strict();
export type RecoverInput = z.input<typeof recoverInputSchema>;

/** `10s`, `5m`, `2h`, `1d` (and `1500ms`) → milliseconds; undefined if it is none of these. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (!m?.[1] || !m[2]) return undefined;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  const ms = Math.round(Number(m[1]) * unit);
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}

/** 90000 → "1m30s": how durations are shown back to the user. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const parts: string[] = [];
  let s = Math.round(ms / 1000);
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
  }
  return parts.join('');
}
