// Merging disk layers under a running VM (see common/disk-chains.ts): for every run of layers no retained
// checkpoint needs, QMP `block-stream` copies their data into the nearest layer above that stays (an
// intermediate node: a retained checkpoint's frozen layer, or the active one) and then points it at the
// nearest layer below that stays. QEMU changes the backing link only when the copy is complete, so a job
// cut short by any crash leaves the chain as it was. Layers are never deleted here: the controller's
// garbage collection removes them once no chain refers to them.
import type { QmpClient } from '../qmp';
import { backingChain } from '../qmp';
import { planMerges, type MergeStep } from '../../common/disk-chains';
import { writeChainRecord } from './disks';
import type { HostRuntime } from './runtime';
import type { VmRecord } from './registry';

import type { CompactRequest } from './types';

export interface CompactedDisk {
  id: string;
  /** The chain after merging, top first (what the headers and QEMU now agree on). */
  chain: string[];
  merged: MergeStep[];
}

export interface CompactedVm {
  name: string;
  disks: CompactedDisk[];
  /** Why this VM was not compacted (not running here, say); its layers all stay. */
  skipped?: string;
}

const JOB_PREFIX = 'vccr-merge-';

/** Waits until no merge job of ours runs on the VM (one left by an interrupted attempt, say). */
async function settleJobs(qmp: QmpClient): Promise<void> {
  for (;;) {
    const jobs = (await qmp.command('query-block-jobs')).filter((j) => j.device.startsWith(JOB_PREFIX));
    if (jobs.length === 0) return;
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function liveChain(qmp: QmpClient, diskId: string): Promise<string[]> {
  const device = `drive-${diskId}`;
  const inserted = (await qmp.command('query-block')).find((b) => b.device === device)?.inserted;
  if (!inserted) throw new Error(`no block device ${device}`);
  return backingChain(inserted.image);
}

/** Format-layer node names by file name (QEMU names its nodes; '#block123' is a valid reference). */
async function nodeNames(qmp: QmpClient): Promise<Map<string, string>> {
  const nodes = await qmp.command('query-named-block-nodes', { flat: true });
  const byFile = new Map<string, string>();
  for (const n of nodes) if (n.drv !== 'file' && n['node-name']) byFile.set(n.file, n['node-name']);
  return byFile;
}

async function stream(qmp: QmpClient, diskId: string, step: MergeStep): Promise<void> {
  const names = await nodeNames(qmp);
  const device = names.get(step.into);
  const base = names.get(step.base);
  if (!device || !base) throw new Error(`QEMU has no node for ${device ? step.base : step.into}`);
  const jobId = `${JOB_PREFIX}${diskId}`;
  const done = qmp.waitForEvent('BLOCK_JOB_COMPLETED', (e) => e.data.device === jobId, 24 * 3600_000);
  done.catch(() => undefined);
  await qmp.command('block-stream', { 'job-id': jobId, device, 'base-node': base });
  const event = await done;
  if (event.data.error) throw new Error(`merging into ${step.into} failed: ${event.data.error}`);
}

async function compactVm(runtime: HostRuntime, req: CompactRequest, record: VmRecord): Promise<CompactedVm> {
  if (!runtime.alive(record)) return { name: record.name, disks: [], skipped: 'not running' };
  const qmp = await runtime.qmp(record);
  await settleJobs(qmp);
  const keep = new Set(req.keep);
  const disks: CompactedDisk[] = [];
  for (const disk of record.disks) {
    const steps = planMerges(await liveChain(qmp, disk.id), (layer) => keep.has(layer));
    // One job at a time per disk: jobs on one chain must not overlap.
    for (const step of steps) await stream(qmp, disk.id, step);
    disks.push({ id: disk.id, chain: await liveChain(qmp, disk.id), merged: steps });
  }
  // Record what QEMU now runs on (this also repairs a record a crash left behind).
  const chains = new Map(disks.map((d) => [d.id, d.chain]));
  const updated = record.disks.map((d) => {
    const chain = chains.get(d.id);
    return chain?.[0] ? { id: d.id, active: chain[0], backing: chain.slice(1) } : d;
  });
  runtime.registry.put({ ...record, disks: updated });
  for (const d of updated) await writeChainRecord(req.store, { cluster: req.cluster, vm: record.name, disk: d.id, active: d.active, backing: d.backing });
  const merged = disks.reduce((n, d) => n + d.merged.length, 0);
  if (merged) runtime.log.info({ vm: record.name, cluster: req.cluster, merges: merged }, 'merged disk layers');
  return { name: record.name, disks };
}

export async function compactDisks(runtime: HostRuntime, req: CompactRequest): Promise<CompactedVm[]> {
  return Promise.all(
    req.vms.map(async (name) => {
      return runtime.exclusive(req.cluster, name, async () => {
        const record = runtime.registry.get(req.cluster, name);
        if (!record || record.host !== runtime.hostId) return { name, disks: [], skipped: `not on host ${runtime.hostId}` };
        return compactVm(runtime, req, record);
      });
    }),
  );
}
