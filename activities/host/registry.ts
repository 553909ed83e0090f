// The host worker's registry of the VMs it launched. One JSON file per VM under the host's state folder,
// so a restarted worker knows its VMs again (QEMU runs daemonized and outlives the worker). The worker
// acts only on VMs recorded here: anything else is refused.
import { mkdirSync, readdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { nameSchema } from '../../common/names';
import { describeZodError } from '../../common/errors';
import { replaceFileSync } from '../../node/fsutil';
import { resolvedVmSchema } from '../../common/spec';

export const diskStateSchema = z.object({
  id: nameSchema,
  /** The writable top layer QEMU currently writes to. */
  active: z.string(),
  /** Backing chain below `active`, nearest first, ending with the spec's base image. */
  backing: z.array(z.string()),
});
export type DiskState = z.infer<typeof diskStateSchema>;

export const vmRecordSchema = z.object({
  version: z.literal(1),
  host: nameSchema,
  cluster: nameSchema,
  name: nameSchema,
  config: resolvedVmSchema,
  machineType: z.string(),
  qemuBinary: z.string(),
  qemuVersion: z.string(),
  argv: z.array(z.string()),
  pid: z.number().int().positive(),
  startTime: z.string(),
  qmpSocket: z.string(),
  guardSocket: z.string(),
  consoleLog: z.string(),
  /** Which operation (launch or restart workflow) started this incarnation; makes launches idempotent. */
  operationId: z.string(),
  launchedAt: z.string(),
  incarnation: z.number().int().nonnegative(),
  disks: z.array(diskStateSchema),
  /** Set while the VM waits for its state (restart); cleared once the state is loaded. */
  restoringFrom: z.string().optional(),
});
export type VmRecord = z.infer<typeof vmRecordSchema>;

export class VmRegistry {
  constructor(readonly stateDir: string) {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  }

  vmDir(cluster: string, vm: string): string {
    return join(this.stateDir, cluster, vm);
  }

  private recordPath(cluster: string, vm: string): string {
    return join(this.vmDir(cluster, vm), 'vm.json');
  }

  get(cluster: string, vm: string): VmRecord | undefined {
    const path = this.recordPath(cluster, vm);
    if (!existsSync(path)) return undefined;
    const parsed = vmRecordSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
    if (!parsed.success) throw new Error(`${describeZodError(parsed.error, `VM record ${path}`)}`);
    return parsed.data;
  }

  put(record: VmRecord): void {
    const dir = this.vmDir(record.cluster, record.name);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // Atomic, without fsync: the record describes a running QEMU process, which a power loss ends too
    // (and fsync on the event loop cost 4–60 ms per write here, twice per VM in every restart).
    replaceFileSync(this.recordPath(record.cluster, record.name), JSON.stringify(record, null, 2));
  }

  remove(cluster: string, vm: string): void {
    rmSync(this.recordPath(cluster, vm), { force: true });
  }

  list(cluster?: string): VmRecord[] {
    const clusters = cluster ? [cluster] : safeReaddir(this.stateDir);
    const out: VmRecord[] = [];
    for (const c of clusters) {
      for (const vm of safeReaddir(join(this.stateDir, c))) {
        const record = this.get(c, vm);
        if (record) out.push(record);
      }
    }
    return out;
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir).filter((n) => nameSchema.safeParse(n).success);
  } catch {
    return [];
  }
}
