// The checkpoint manifest: the commit record of a checkpoint. It is written once, atomically, after every
// VM's state is durable, and never modified; a checkpoint folder without it does not exist. Everything
// needed to bring the cluster back is in it: each VM's full launch configuration (as libvirt keeps the
// domain XML with a saved image), its state file with size and sha256, and its frozen disk chain.
import { z } from 'zod';
import { checkpointIdSchema, nameSchema } from './names';
import { clusterSpecSchema, resolvedVmSchema, stateCodecSchema } from './spec';

const epochMs = z.number().int().nonnegative();
/** QEMU event timestamps: epoch ms with µs resolution. */
const eventMs = z.number().nonnegative();
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);
const phaseTiming = z.object({ start: epochMs, end: epochMs });
/** File names inside the checkpoint folder: never a path, so a manifest cannot point outside it. */
const localFileName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}\.state$/);

export const manifestVmSchema = z
  .object({
    name: nameSchema,
    host: nameSchema,
    config: resolvedVmSchema,
    machineType: z.string().regex(/^[a-z0-9._-]+$/),
    qemuVersion: z.string(),
    argv: z.array(z.string()),
    /** size and sha256 are the file's; `codec` and the stream's `rawSize` are set when it is compressed. */
    state: z
      .object({ file: localFileName, size: z.number().int().positive(), sha256: sha256Hex, codec: stateCodecSchema.optional(), rawSize: z.number().int().nonnegative().optional() })
      .strict(),
    /** Per disk: the frozen layer (the checkpoint's disk) and its backing chain, nearest first. */
    disks: z.array(z.object({ id: nameSchema, frozen: z.string(), backing: z.array(z.string()) }).strict()),
    console: z.object({ path: z.string(), offsetAtPause: z.number().int().nonnegative() }).strict().optional(),
    timings: z
      .object({
        pausedAt: epochMs,
        frozenAt: epochMs.optional(),
        saveStartedAt: epochMs,
        savedAt: epochMs,
        /** Live mode: QEMU's STOP and RESUME event times (host clock, µs resolution); the snapshot is the VM's state in between. */
        stoppedAt: eventMs.optional(),
        resumedAt: eventMs.optional(),
      })
      .strict(),
  })
  .strict();

export const manifestSchema = z
  .object({
    format: z.literal('vccr-checkpoint'),
    version: z.literal(1),
    cluster: nameSchema,
    checkpointId: checkpointIdSchema,
    workflowId: z.string(),
    /** The run that committed it: a later run with the same workflow id must never touch it. */
    runId: z.string(),
    createdAt: z.string(),
    committedAt: z.string(),
    spec: clusterSpecSchema,
    /** How it was taken (absent in manifests written before live mode: stop). */
    mode: z.enum(['stop', 'live']).optional(),
    /** Live mode: the inputs of the cut check that let it commit (workflows/live-cut.ts). */
    cut: z.object({ lastStopAt: eventMs, firstResumeAt: eventMs, toleranceMs: z.number().int().nonnegative(), marginMs: z.number() }).strict().optional(),
    vms: z.array(manifestVmSchema).min(1),
    phases: z
      .object({ prepare: phaseTiming, pause: phaseTiming, freeze: phaseTiming, save: phaseTiming, commit: z.object({ start: epochMs }) })
      .strict(),
    totalBytes: z.number().int().nonnegative(),
  })
  .strict();

export type Manifest = z.infer<typeof manifestSchema>;
export type ManifestVm = z.infer<typeof manifestVmSchema>;

/** Written beside the manifest after the resume barrier (the manifest itself is immutable once committed). */
export const resumeRecordSchema = z
  .object({
    checkpointId: checkpointIdSchema,
    vms: z.array(z.object({ name: nameSchema, resumedAt: epochMs }).strict()),
    phases: z.object({ resume: phaseTiming }).strict(),
  })
  .strict();
export type ResumeRecord = z.infer<typeof resumeRecordSchema>;

/** Written (to <store>/<cluster>/_failed/) when a checkpoint fails: the only trace a failed checkpoint leaves. */
export const failureRecordSchema = z
  .object({
    cluster: nameSchema,
    checkpointId: checkpointIdSchema,
    workflowId: z.string(),
    failedAt: z.string(),
    phase: z.string(),
    reason: z.string(),
  })
  .strict();
export type FailureRecord = z.infer<typeof failureRecordSchema>;
