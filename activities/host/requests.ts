// The schemas of every host request. A host worker trusts no caller: each activity validates its input
// with these first (activities/host/index.ts) and refuses anything else as InvalidRequest, naming the
// field. Names and paths that end up in file paths or QEMU options must match the strict patterns of
// common/names.ts; numbers are bounded. The request types in types.ts are inferred from these.
import { z } from 'zod';
import { absolutePathSchema, checkpointIdSchema, nameSchema } from '../../common/names';
import { resolvedVmSchema, stateCodecSchema } from '../../common/spec';

const vmNames = z.array(nameSchema).min(1).max(1024);
const epochMs = z.number().int().min(0).max(8.64e15);
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits');
/** Labels that name disk layers (and so files): like checkpoint ids, at most 100 characters. */
const operationIdSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, 'must be 1-100 characters of A-Z, a-z, 0-9, ".", "_" and "-"');
/** The workflow run a checkpoint step belongs to: retried work is recognised by it, never by the id alone. */
const runIdSchema = z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'must be a workflow run id');
/** Temporal workflow ids we send progress signals to. */
const workflowIdSchema = z.string().min(1).max(400).regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces');

/** An inspection; an empty list only asks whether the host worker is there (the protection watch's probe). */
export const vmRefSchema = z.object({ cluster: nameSchema, vms: z.array(nameSchema).max(1024) }).strict();

export const prepareRequestSchema = z
  .object({ cluster: nameSchema, store: absolutePathSchema, checkpointId: checkpointIdSchema, vms: vmNames })
  .strict();

export const pauseRequestSchema = z
  .object({
    cluster: nameSchema,
    checkpointId: checkpointIdSchema,
    runId: runIdSchema,
    vms: vmNames,
    /** Longest the VMs may stay paused: then the host's watchdog resumes them itself, whatever else happens. */
    pauseBoundMs: z.number().int().min(1000).max(3_600_000),
    /** Epoch ms to issue `stop` at, so every host pauses together (now, if already past). */
    notBefore: epochMs.optional(),
  })
  .strict();

export const freezeRequestSchema = z
  .object({ cluster: nameSchema, store: absolutePathSchema, checkpointId: checkpointIdSchema, runId: runIdSchema, vms: vmNames })
  .strict();

export const saveRequestSchema = z
  .object({
    cluster: nameSchema,
    store: absolutePathSchema,
    checkpointId: checkpointIdSchema,
    runId: runIdSchema,
    vms: vmNames,
    /** Workflow to send progress signals to. */
    progressWorkflowId: workflowIdSchema,
    /** Compress the state files (the cluster spec's stateCompression). */
    compression: stateCodecSchema.optional(),
  })
  .strict();

/**
 * Stop mode's capture (capture-step.ts): the pause barrier, the disks frozen and each VM's save started in
 * the background, in one step; finishSaves joins the saves.
 */
export const captureRequestSchema = z
  .object({
    ...pauseRequestSchema.shape,
    store: absolutePathSchema,
    progressWorkflowId: workflowIdSchema,
    compression: stateCodecSchema.optional(),
    /**
     * Every host of the cut: the host resumes each VM once its state is durable and all of them have marked
     * their VMs paused (store-barrier.ts), instead of waiting for finishSaves. Absent: finishSaves resumes.
     */
    barrierHosts: z.array(nameSchema).min(1).max(1024).optional(),
  })
  .strict();

export const finishSavesRequestSchema = z
  .object({
    ...saveRequestSchema.shape,
    /** `cont` each VM as soon as its own state file is durable (only once every VM of the cut is paused). */
    resumeEachWhenSaved: z.boolean(),
  })
  .strict();

export const resumeRequestSchema = z
  .object({
    cluster: nameSchema,
    vms: vmNames,
    /** The checkpoint whose pause this resume ends (releases the watchdog lease); absent for a restore. */
    checkpointId: checkpointIdSchema.optional(),
    /** Optional epoch ms to issue `cont` at, so all hosts resume together. */
    notBefore: epochMs.optional(),
    /** The checkpoint is being abandoned: a save may still be running and must be cancelled first. */
    abandon: z.boolean().optional(),
  })
  .strict();

export const stopRequestSchema = z
  .object({
    cluster: nameSchema,
    vms: vmNames,
    /** quit: ask QEMU to exit; kill: SIGKILL. Either way the host forgets the VM. */
    mode: z.enum(['quit', 'kill']),
  })
  .strict();

export const ensureGoneRequestSchema = z
  .object({
    cluster: nameSchema,
    vms: vmNames,
    /** Stop VMs that still run instead of refusing. */
    force: z.boolean(),
  })
  .strict();

/** A state file is named by its checkpoint and VM, never given as a path: a host reads only the store. */
const stateFileSchema = z.object({ vm: nameSchema, size: z.number().int().positive(), sha256: sha256Hex }).strict();

export const verifyStateRequestSchema = z
  .object({ store: absolutePathSchema, cluster: nameSchema, checkpointId: checkpointIdSchema, files: z.array(stateFileSchema).min(1).max(1024) })
  .strict();

export const loadRequestSchema = z
  .object({
    store: absolutePathSchema,
    cluster: nameSchema,
    checkpointId: checkpointIdSchema,
    vms: z.array(z.object({ name: nameSchema, size: z.number().int().positive(), sha256: sha256Hex, codec: stateCodecSchema.optional() }).strict()).min(1).max(1024),
    progressWorkflowId: workflowIdSchema,
    /**
     * Every host of the restart, and its workflow run: once all of its VMs have loaded, the host marks so on
     * the store and resumes them as soon as every host has (store-barrier.ts); each VM's entry then carries
     * `resumedAt`. Absent: the workflow's resume step resumes them.
     */
    resumeWhenAllLoaded: z.object({ hosts: z.array(nameSchema).min(1).max(1024), runId: runIdSchema }).strict().optional(),
  })
  .strict();

export const launchRequestSchema = z
  .object({
    cluster: nameSchema,
    store: absolutePathSchema,
    /** Safe label of the launching operation; names the new disk layers and makes the call idempotent. */
    operationId: operationIdSchema,
    vms: z.array(resolvedVmSchema).min(1).max(1024),
    /** Restore: start each VM paused, waiting for its state, on a fresh overlay over its frozen disks. */
    restore: z
      .object({
        checkpointId: checkpointIdSchema,
        /** Per VM, per disk: the frozen chain (top first) recorded in the manifest. */
        frozenDisks: z.record(nameSchema, z.record(nameSchema, z.array(absolutePathSchema).min(1).max(1000))),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((req, ctx) => {
    req.vms.forEach((vm, i) => {
      if (vm.cluster !== req.cluster) ctx.addIssue({ code: 'custom', path: ['vms', i, 'cluster'], message: `must be the request's cluster ${req.cluster}` });
    });
    // A restored disk sits on layers of this cluster's store, or (at the bottom) on the VM's own base image.
    // (The map covers the whole cluster; only this request's VMs are launched from it.)
    const disksDir = `${req.store}/${req.cluster}/_disks/`;
    for (const [vm, disks] of Object.entries(req.restore?.frozenDisks ?? {})) {
      const config = req.vms.find((v) => v.name === vm);
      if (!config) continue;
      for (const [disk, chain] of Object.entries(disks)) {
        const base = config.disks.find((d) => d.id === disk)?.image;
        chain.forEach((layer, i) => {
          if (!layer.startsWith(disksDir) && !(i === chain.length - 1 && layer === base)) {
            ctx.addIssue({ code: 'custom', path: ['restore', 'frozenDisks', vm, disk, i], message: `must be a layer under ${disksDir} or the VM's base image` });
          }
        });
      }
    }
  });

// ---- vccr doctor's host steps (activities/host/preflight.ts) ----

/** The doctor run's token (a uuid): it names a folder in the store. */
const doctorTokenSchema = z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'must be 1-64 characters of letters, digits and "-"');
/** A doctor marker file name: 'controller' or 'host-<host id>'. */
const markerSchema = z.string().regex(/^(controller|host-[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?)$/, 'must be a doctor marker name');

export const hostPreflightRequestSchema = z
  .object({
    token: doctorTokenSchema,
    cluster: nameSchema.optional(),
    store: absolutePathSchema.optional(),
    storeNeedBytes: z.number().int().min(0).max(2 ** 53),
    vms: z.array(resolvedVmSchema).max(1024),
  })
  .strict();

export const readMarkersRequestSchema = z
  .object({ store: absolutePathSchema, token: doctorTokenSchema, expected: z.array(markerSchema).max(1024) })
  .strict();

export const removeMarkerRequestSchema = z.object({ store: absolutePathSchema, token: doctorTokenSchema, marker: markerSchema }).strict();

// ---- merging disk layers under running VMs (activities/host/compact.ts) ----

export const compactRequestSchema = z
  .object({
    cluster: nameSchema,
    store: absolutePathSchema,
    vms: vmNames,
    /** Layers that must stay (the frozen layers of retained checkpoints); top and base always stay. */
    keep: z.array(absolutePathSchema).max(100_000),
  })
  .strict();

// ---- live checkpoints (activities/host/live-capture.ts) ----

/** The timed capture: a pause request with its plan (when to stop, when to snapshot) and the store. */
export const liveCaptureRequestSchema = pauseRequestSchema
  .omit({ notBefore: true })
  .extend({
    store: absolutePathSchema,
    /** Epoch ms (host clock) to issue `stop` at: every host pauses together. */
    pauseAt: epochMs,
    /**
     * Epoch ms (host clock) to start the snapshots at, after the freeze (QEMU resumes each guest right after):
     * the gap after pauseAt lets a host that stops a little late still stop before any guest runs again.
     */
    snapshotAt: epochMs,
    /**
     * Every host of the cut: a host starts its snapshots as soon as all of them have marked their VMs
     * stopped in the checkpoint folder (store-barrier.ts), snapshotAt at the latest.
     */
    barrierHosts: z.array(nameSchema).min(1).max(1024).optional(),
  })
  .strict();

/** Sets up each VM's snapshot (detached writer, relay, capabilities) while the guests run; the same fields as a freeze. */
export const livePrepareRequestSchema = freezeRequestSchema;

/** Joins the background writes: a save request without compression (a live state file is raw). */
export const liveFinishRequestSchema = saveRequestSchema.omit({ compression: true }).strict();

/** Drains and removes the live writes of a failed checkpoint. */
export const liveCancelRequestSchema = freezeRequestSchema;
