// Inputs of the public workflows. Whoever starts them — our CLI, the TypeScript client, the Web UI or
// `temporal workflow start --input '{...}'` — the workflow validates its input with these first.
import { z } from 'zod';
import { absolutePathSchema, checkpointIdSchema, nameSchema } from './names';
import { clusterSpecSchema } from './spec';

export const launchInputSchema = z.object({ spec: clusterSpecSchema }).strict();

export const checkpointInputSchema = z
  .object({
    cluster: nameSchema,
    /** Defaults to ck-<UTC date>-<time>-<random>. */
    checkpointId: checkpointIdSchema.optional(),
    /**
     * stop: every VM is paused until its RAM is on disk. live: paused only to fix the cut (a few ms to tens of
     * ms), RAM written while the guests run (QEMU background-snapshot); see ARCHITECTURE.md "Live checkpoints".
     */
    mode: z.enum(['stop', 'live']).default('stop'),
  })
  .strict();

export const restartInputSchema = z
  .object({
    cluster: nameSchema,
    /** Defaults to the newest committed checkpoint. */
    checkpointId: checkpointIdSchema.optional(),
    /** Bring the VMs of host a back on host b: { "a": "b" }. */
    hostMap: z.record(nameSchema, nameSchema).default({}),
    /** Stop VMs of the cluster that still run instead of refusing. */
    force: z.boolean().default(false),
    /** Only needed when the cluster record is gone: where its checkpoints are. */
    store: absolutePathSchema.optional(),
    /**
     * Hosts known to be dead (a recovery found them so): not asked to stop their VMs, which saves waiting
     * for them to time out. No VM may be placed on one (remap its VMs with hostMap).
     */
    unreachable: z.array(nameSchema).default([]),
  })
  .strict();

export const shutdownInputSchema = z
  .object({
    cluster: nameSchema,
    /** quit: QEMU exits cleanly; kill: SIGKILL (as a crash would). */
    mode: z.enum(['quit', 'kill']).default('quit'),
  })
  .strict();

export const inspectInputSchema = z.object({ cluster: nameSchema }).strict();

/** doctorCluster: a spec (every host it names), or hosts by id; and the store to check without a spec. */
export const doctorInputSchema = z
  .object({
    spec: clusterSpecSchema.optional(),
    hosts: z.array(nameSchema).max(256).default([]),
    store: absolutePathSchema.optional(),
  })
  .strict();

/** listCheckpoints; `store` only when the cluster record is gone. */
export const storeInputSchema = z.object({ cluster: nameSchema, store: absolutePathSchema.optional() }).strict();

/** showCheckpoint, verifyCheckpoint, deleteCheckpoint. */
export const checkpointRefInputSchema = storeInputSchema.extend({ checkpointId: checkpointIdSchema }).strict();

export type LaunchInput = z.input<typeof launchInputSchema>;
export type CheckpointInput = z.input<typeof checkpointInputSchema>;
export type RestartInput = z.input<typeof restartInputSchema>;
export type ShutdownInput = z.input<typeof shutdownInputSchema>;
export type InspectInput = z.input<typeof inspectInputSchema>;
export type StoreInput = z.input<typeof storeInputSchema>;
export type DoctorInput = z.input<typeof doctorInputSchema>;
export type CheckpointRefInput = z.input<typeof checkpointRefInputSchema>;
