// The operations the sections run on a test bed: a checkpoint or restart through the workflows, the same
// through the direct QMP script, dd on the store's filesystem, and the clean-up between them.
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { guestImageDir, type TestBed } from '../harness/testbed';
import { readConsole, waitForConsole } from '../harness/console';
import { janitor } from '../harness/janitor';
import { identify, terminate, type ProcessIdentity } from '../node/proc';
import { maxOf } from '../common/stats';
import type { CheckpointResult, Manifest, RestartResult } from '../client';
import type { ClusterSpecInput } from '../common/spec';
import { directCheckpoint, directRestart, readVmRecords, type DirectCheckpointResult } from './direct-qmp';
import { MiB, range, say } from './util';

const run = promisify(execFile);

/** One measurement repeated for our workflows and for the direct script, ms per repetition. */
export type PairedMs = { ours: number[]; direct: number[] };

/** Allocated bytes (du) of a file or of every file under a folder. */
export function allocatedBytes(path: string): number {
  try {
    return Number(execFileSync('du', ['-s', '-B1', path], { encoding: 'utf8' }).split('\t')[0]);
  } catch {
    return Number.NaN;
  }
}

/** A cluster of test guests running memfill (incompressible RAM that changes and is checked after restarts). */
export function memfillSpec(bed: TestBed, cluster: string, vms: Array<{ name: string; host: string }>, memoryMiB: number, fillMiB: number): ClusterSpecInput {
  const image = guestImageDir();
  return {
    cluster,
    store: bed.store,
    pauseBoundSeconds: 300,
    hosts: Object.fromEntries([...new Set(vms.map((v) => v.host))].map((h) => [h, {}])),
    vms: vms.map((vm) => ({
      name: vm.name,
      host: vm.host,
      memoryMiB,
      boot: {
        kernel: join(image, 'vmlinuz'),
        initrd: join(image, 'initrd.img'),
        append: `console=ttyS0 quiet panic=-1 vccr.hostname=${vm.name} vccr.run=memfill vccr.args=--mb,${fillMiB},--seed,${vm.name.length + memoryMiB}`,
      },
    })),
  };
}

/** One checkpoint through the workflows; `t0` is when it was called. */
export async function oursCheckpoint(bed: TestBed, cluster: string): Promise<{ result: CheckpointResult; manifest: Manifest; wallMs: number; t0: number }> {
  const t0 = Date.now();
  const result = await bed.vccr.checkpoint(cluster);
  const wallMs = Date.now() - t0;
  if (!('downtimeMs' in result)) throw new Error('checkpoint did not complete');
  const manifest = JSON.parse(readFileSync(result.manifest, 'utf8')) as Manifest;
  return { result, manifest, wallMs, t0 };
}

/** One checkpoint through the direct QMP script, into <bed>/direct/<cluster>/<n>. */
export async function directCheckpointOf(bed: TestBed, cluster: string, hosts: string[], n: number): Promise<{ result: DirectCheckpointResult; dir: string; wallMs: number }> {
  const vms = readVmRecords(hosts.map((h) => bed.hostStateDir(h)), cluster);
  const dir = join(bed.dir, 'direct', cluster, String(n));
  const t0 = Date.now();
  const result = await directCheckpoint(vms, dir, cluster);
  return { result, dir, wallMs: Date.now() - t0 };
}

/** Restart through the workflows, returning the workflow id too (for its history). */
export async function oursRestart(bed: TestBed, cluster: string, checkpointId: string): Promise<{ r: RestartResult; t0: number; workflowId: string }> {
  const t0 = Date.now();
  const started = await bed.vccr.restart(cluster, { checkpointId, noWait: true });
  if (!('workflowId' in started)) throw new Error('restart was not started');
  const r = (await (await bed.temporal()).workflow.getHandle(started.workflowId).result()) as RestartResult;
  return { r, t0, workflowId: started.workflowId };
}

export interface DdRun {
  bytes: number;
  ms: number;
  bytesPerSec: number;
}

/** `dd if=/dev/zero of=<dir>/dd.bin bs=1M count=<bytes> conv=fdatasync`: the disk's own pace. */
export async function ddWrite(dir: string, bytes: number): Promise<DdRun> {
  const file = join(dir, `dd-${process.pid}.bin`);
  const count = Math.max(1, Math.ceil(bytes / MiB));
  const t0 = process.hrtime.bigint();
  await run('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${count}`, 'conv=fdatasync', 'status=none']);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  rmSync(file, { force: true });
  return { bytes: count * MiB, ms, bytesPerSec: (count * MiB) / (ms / 1000) };
}

/** N parallel dd's sharing `bytes` (the same parallelism as N VMs saving at once). */
export async function ddParallel(dir: string, bytes: number, streams: number): Promise<DdRun & { streams: number }> {
  const count = Math.max(1, Math.ceil(bytes / streams / MiB));
  const t0 = process.hrtime.bigint();
  await Promise.all(
    range(streams).map((i) => run('dd', ['if=/dev/zero', `of=${join(dir, `ddp-${i}.bin`)}`, 'bs=1M', `count=${count}`, 'conv=fdatasync', 'status=none'])),
  );
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  for (const i of range(streams)) rmSync(join(dir, `ddp-${i}.bin`), { force: true });
  const total = count * streams * MiB;
  return { bytes: total, ms, bytesPerSec: total / (ms / 1000), streams };
}

/** VMs the direct script launched (not known to any host worker): ended by us. */
export class DirectProcesses {
  private ids: ProcessIdentity[] = [];
  add(pid: number): void {
    const id = janitor.trackProcess(pid, 'direct-qmp QEMU') ?? identify(pid);
    if (id) this.ids.push(id);
  }
  async killAll(): Promise<void> {
    for (const id of this.ids) {
      await terminate(id, 'SIGKILL', 2000);
      janitor.untrackProcess(id);
    }
    this.ids = [];
  }
}

export async function deleteOurs(bed: TestBed, cluster: string, checkpointId: string): Promise<void> {
  await bed.vccr.checkpoints.delete(cluster, checkpointId).catch((err: unknown) => say(`(could not delete ${checkpointId}: ${(err as Error).message})`));
}

export async function downQuietly(bed: TestBed, cluster: string): Promise<void> {
  await bed.vccr.down(cluster, { kill: true }).catch((err: unknown) => say(`(down ${cluster}: ${(err as Error).message})`));
}

/** Waits for a line on every VM's console (after the byte offsets given). */
export async function waitAllConsoles(paths: string[], pattern: RegExp, from: number[] = [], timeoutMs = 180_000): Promise<void> {
  await Promise.all(paths.map((p, i) => waitForConsole(p, pattern, { from: from[i] ?? 0, timeoutMs })));
}

export function assertNoMemfillErrors(paths: string[]): void {
  for (const p of paths) {
    const bad = readConsole(p).match(/^MEMFILL (?:ERROR|FATAL).*$/m);
    if (bad) throw new Error(`guest memory check failed in ${p}: ${bad[0]}`);
  }
}

/**
 * Restarts the cluster `reps` times from our checkpoint and from the direct script's, alternating which
 * goes first, with every VM killed before each; appends call → last resume and restore-only times.
 */
export async function pairedRestarts(
  bed: TestBed,
  procs: DirectProcesses,
  cluster: string,
  oursId: string,
  directDir: string,
  reps: number,
  into: { restart: PairedMs; restore: PairedMs },
): Promise<void> {
  for (const rep of range(reps)) {
    for (const which of rep % 2 === 0 ? ['direct', 'ours'] : ['ours', 'direct']) {
      await bed.killAllVms();
      await procs.killAll();
      if (which === 'ours') {
        const t0 = Date.now();
        const r = await bed.vccr.restart(cluster, { checkpointId: oursId });
        if (!('restoreMs' in r)) throw new Error('restart did not complete');
        into.restart.ours.push(maxOf(r.vms.map((v) => v.resumedAt)) - t0);
        into.restore.ours.push(r.restoreMs);
      } else {
        const d = await directRestart(join(directDir, 'manifest.json'), join(bed.dir, 'dr', cluster, String(rep)), (pid) => procs.add(pid));
        into.restart.direct.push(d.restartMs);
        into.restore.direct.push(d.restoreMs);
      }
    }
  }
}
