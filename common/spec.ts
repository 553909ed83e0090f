// The cluster spec: the one file a user writes to describe a cluster. It is validated here, at the edge
// (CLI, library, and again inside each workflow for input that arrived through `temporal workflow start`).
import { z } from 'zod';
import { absolutePathSchema, nameSchema, taskQueueSchema } from './names';
import { deriveMac } from './mac';
import { hostTaskQueue } from './ids';

const MAC_PATTERN = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;

export const netnsSchema = z.string().regex(/^[a-z0-9][a-z0-9-]{0,44}$/, 'must be a network namespace name of a-z, 0-9 and "-" (at most 45)');

export const diskSpecSchema = z
  .object({
    id: nameSchema,
    /** The disk's base image. Never written: the VM runs on an overlay in the checkpoint store. */
    image: absolutePathSchema,
    format: z.enum(['qcow2', 'raw']).default('qcow2'),
  })
  .strict();

export const nicSpecSchema = z
  .object({
    id: nameSchema,
    /** An existing tap device (in the VM's network namespace, if it has one). */
    tap: z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, 'must be a Linux interface name (1-15 of A-Z a-z 0-9 _ . -)'),
    /** Defaults to one derived from cluster, VM and NIC names, so it is stable across restarts. */
    mac: z.string().regex(MAC_PATTERN, 'must look like 52:54:00:12:34:56 (lower case)').optional(),
  })
  .strict();

export const kernelBootSchema = z
  .object({
    kernel: absolutePathSchema,
    initrd: absolutePathSchema.optional(),
    append: z
      .string()
      .max(2048, 'must be at most 2048 characters')
      .regex(/^[\x20-\x7e]*$/, 'must be printable ASCII on one line')
      .optional(),
  })
  .strict();

export const vmSpecSchema = z
  .object({
    name: nameSchema,
    host: nameSchema,
    memoryMiB: z.number().int().min(16).max(1024 * 1024),
    vcpus: z.number().int().min(1).max(64).default(1),
    accel: z.enum(['tcg', 'kvm']).default('tcg'),
    /** 'none': QEMU without guest hardware (no CPU, RAM or devices) — for orchestration tests at scale. */
    machine: z.enum(['pc', 'q35', 'none']).default('pc'),
    /** Direct kernel boot; without it the VM boots from its first disk. */
    boot: kernelBootSchema.optional(),
    disks: z.array(diskSpecSchema).max(8).default([]),
    nics: z.array(nicSpecSchema).max(4).default([]),
    /** Network namespace (under /run/netns) the QEMU process runs in, for tap devices that live there. */
    netns: netnsSchema.optional(),
  })
  .strict()
  .refine((vm) => vm.machine === 'none' || vm.boot !== undefined || vm.disks.length > 0, {
    message: 'needs either "boot" (kernel) or at least one disk to boot from',
  })
  .refine((vm) => vm.machine !== 'none' || (vm.boot === undefined && vm.disks.length === 0 && vm.nics.length === 0), {
    message: 'machine "none" has no devices: no boot, disks or nics',
  });

export const hostSpecSchema = z
  .object({
    /** Task queue the host's worker polls; defaults to vccr-host-<id>. */
    taskQueue: taskQueueSchema.optional(),
  })
  .strict();

/** How state files are compressed (absent: raw). The format is in activities/host/codec.ts. */
export const stateCodecSchema = z.enum(['zstd']);
export type StateCodec = z.infer<typeof stateCodecSchema>;

export const clusterSpecSchema = z
  .object({
    cluster: nameSchema,
    /** Checkpoint store: shared storage visible at this path on every host and the controller. */
    store: absolutePathSchema,
    /** The longest the cluster may stay paused during a checkpoint before it is resumed and the checkpoint fails. */
    pauseBoundSeconds: z.number().int().min(1).max(3600).default(120),
    /**
     * Live checkpoints: how far apart the hosts' clocks may be (NTP/PTP on a LAN). The cut check requires this
     * margin between STOP and RESUME times taken on different hosts; a host provably further off is refused.
     */
    clockToleranceMs: z.number().int().min(0).max(1000).default(5),
    /**
     * Live checkpoints: how long after the pause instant the snapshots start (each guest's pause includes it);
     * default 2 × clockToleranceMs + 90. Lower it on quiet hosts whose stops land within a few ms of the instant.
     */
    liveSnapshotGapMs: z.number().int().min(0).max(10_000).optional(),
    /** Compress state files (zstd) when the store, not QEMU, is the bottleneck; off by default. */
    stateCompression: stateCodecSchema.optional(),
    hosts: z.record(nameSchema, hostSpecSchema).refine((h) => Object.keys(h).length >= 1 && Object.keys(h).length <= 256, {
      message: 'must name between 1 and 256 hosts',
    }),
    vms: z.array(vmSpecSchema).min(1).max(1024),
    /** Hosts that may take over the VMs of a dead host when a protected cluster is recovered (`vccr protect`). */
    spareHosts: z.array(nameSchema).max(256).default([]),
    /**
     * What recovery may assume about a host it cannot reach. 'operator': its VMs may still run there, so wait
     * for `vccr recover <cluster> --host-dead <host>`; 'unreachable-is-dead': move its VMs to a spare host.
     */
    fencing: z.enum(['operator', 'unreachable-is-dead']).default('operator'),
  })
  .strict()
  .superRefine((spec, ctx) => {
    spec.spareHosts.forEach((host, i) => {
      if (!(host in spec.hosts)) {
        ctx.addIssue({ code: 'custom', path: ['spareHosts', i], message: `unknown host "${host}": a spare host must be listed in "hosts" (with its task queue)` });
      }
      if (spec.spareHosts.indexOf(host) !== i) ctx.addIssue({ code: 'custom', path: ['spareHosts', i], message: `duplicate spare host "${host}"` });
    });
    const seenVm = new Set<string>();
    const seenMac = new Map<string, string>();
    const seenTap = new Map<string, string>();
    spec.vms.forEach((vm, i) => {
      if (seenVm.has(vm.name)) ctx.addIssue({ code: 'custom', path: ['vms', i, 'name'], message: `duplicate VM name "${vm.name}"` });
      seenVm.add(vm.name);
      if (!(vm.host in spec.hosts)) {
        ctx.addIssue({ code: 'custom', path: ['vms', i, 'host'], message: `unknown host "${vm.host}" (hosts: ${Object.keys(spec.hosts).join(', ')})` });
      }
      const ids = new Set<string>();
      vm.disks.forEach((d, j) => {
        if (ids.has(d.id)) ctx.addIssue({ code: 'custom', path: ['vms', i, 'disks', j, 'id'], message: `duplicate disk id "${d.id}"` });
        ids.add(d.id);
      });
      const nicIds = new Set<string>();
      vm.nics.forEach((n, j) => {
        if (nicIds.has(n.id)) ctx.addIssue({ code: 'custom', path: ['vms', i, 'nics', j, 'id'], message: `duplicate NIC id "${n.id}"` });
        nicIds.add(n.id);
        const mac = n.mac ?? deriveMac(spec.cluster, vm.name, n.id);
        const macOwner = seenMac.get(mac);
        if (macOwner) ctx.addIssue({ code: 'custom', path: ['vms', i, 'nics', j, 'mac'], message: `MAC ${mac} is also used by ${macOwner}` });
        seenMac.set(mac, `${vm.name}/${n.id}`);
        const tapKey = `${vm.host}/${vm.netns ?? ''}/${n.tap}`;
        const tapOwner = seenTap.get(tapKey);
        if (tapOwner) ctx.addIssue({ code: 'custom', path: ['vms', i, 'nics', j, 'tap'], message: `tap ${n.tap} is also used by ${tapOwner} on host ${vm.host}` });
        seenTap.set(tapKey, `${vm.name}/${n.id}`);
      });
    });
  });

export type ClusterSpecInput = z.input<typeof clusterSpecSchema>;
export type ClusterSpec = z.output<typeof clusterSpecSchema>;
export type VmSpec = z.output<typeof vmSpecSchema>;
export type DiskSpec = z.output<typeof diskSpecSchema>;
export type NicSpec = z.output<typeof nicSpecSchema>;

/** A VM with every default filled in: what a host needs to launch it, and what a checkpoint records. */
export const resolvedVmSchema = z
  .object({
    cluster: nameSchema,
    name: nameSchema,
    host: nameSchema,
    memoryMiB: z.number().int().min(16).max(1024 * 1024),
    vcpus: z.number().int().min(1).max(64),
    accel: z.enum(['tcg', 'kvm']),
    machine: z.enum(['pc', 'q35', 'none']),
    boot: kernelBootSchema.optional(),
    disks: z.array(diskSpecSchema.required()),
    nics: z.array(nicSpecSchema.required()),
    netns: netnsSchema.optional(),
  })
  .strict();
export type ResolvedVm = z.infer<typeof resolvedVmSchema>;

export function taskQueueOf(spec: Pick<ClusterSpec, 'hosts'>, host: string): string {
  return spec.hosts[host]?.taskQueue ?? hostTaskQueue(host);
}

export function resolveVm(spec: ClusterSpec, vm: VmSpec): ResolvedVm {
  return { ...vm, cluster: spec.cluster, nics: vm.nics.map((n) => ({ ...n, mac: n.mac ?? deriveMac(spec.cluster, vm.name, n.id) })) };
}
