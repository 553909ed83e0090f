// Disk chains as the controller sees them in the store: what each checkpoint's disk is now (its qcow2
// headers, checked against what the manifest recorded), which layers something still needs, and merges
// of layers no running VM has open (see common/disk-chains.ts for the reasoning).
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { isMergedFrom, planMerges, type MergeStep } from '../../common/disk-chains';
import { storeLayout } from '../../common/store-layout';
import type { Manifest } from '../../common/manifest';
import { childLogger } from '../../node/logger';
import { chainFiles, imageChain, rebasePreservingContent } from '../qemu-img';

const log = childLogger('chains');

const chainRecordSchema = z.object({ vm: z.string(), disk: z.string(), active: z.string(), backing: z.array(z.string()) }).strict();

/** Every recorded chain of a manifest's disks, top (the frozen layer) first. */
export function recordedChains(manifest: Manifest): Array<{ vm: string; disk: string; recorded: string[] }> {
  return manifest.vms.flatMap((vm) => vm.disks.map((d) => ({ vm: vm.name, disk: d.id, recorded: [d.frozen, ...d.backing] })));
}

/** The chain under `top` as its headers say, if it is `recorded` shortened by merges; else why not. */
export async function currentChain(recorded: string[]): Promise<{ chain: string[] } | { problem: string }> {
  const top = recorded[0];
  if (!top) return { problem: 'empty chain' };
  if (!existsSync(top)) return { problem: `disk layer ${top} is missing` };
  let chain: string[];
  try {
    chain = await chainFiles(top);
  } catch (err) {
    return { problem: (err as Error).message };
  }
  if (!isMergedFrom(chain, recorded)) {
    return { problem: `the backing chain of ${top} (${chain.join(' → ')}) is not the recorded one or a merge of it` };
  }
  return { chain };
}

/** Damage to a checkpoint's disks: a layer missing or unreadable, or headers that point elsewhere. */
export async function chainProblems(manifest: Manifest): Promise<string[]> {
  const problems: string[] = [];
  for (const { vm, recorded } of recordedChains(manifest)) {
    const result = await currentChain(recorded);
    if ('problem' in result) problems.push(`disk of VM ${vm}: ${result.problem}`);
  }
  return problems;
}

async function chainRecords(store: string, cluster: string): Promise<Array<{ dir: string; list: string[] | undefined }>> {
  const disksDir = storeLayout.disksDir(store, cluster);
  const out: Array<{ dir: string; list: string[] | undefined }> = [];
  for (const vm of await readdir(disksDir).catch(() => [] as string[])) {
    for (const disk of await readdir(join(disksDir, vm)).catch(() => [] as string[])) {
      const dir = join(disksDir, vm, disk);
      const path = join(dir, 'chain.json');
      if (!existsSync(path)) continue;
      const parsed = chainRecordSchema.safeParse(await readFile(path, 'utf8').then((t) => JSON.parse(t) as unknown).catch(() => null));
      out.push({ dir, list: parsed.success ? [parsed.data.active, ...parsed.data.backing] : undefined });
    }
  }
  return out;
}

/** Layers some running VM may have open (chain.json of every disk), plus the live chains hosts reported. */
export async function openLayers(store: string, cluster: string, live: string[][]): Promise<Set<string>> {
  const open = new Set<string>(live.flat());
  for (const { dir, list } of await chainRecords(store, cluster)) {
    if (!list) {
      for (const f of await readdir(dir)) open.add(join(dir, f));
      continue;
    }
    for (const layer of list) open.add(layer);
    for (const layer of await chainFiles(list[0] as string).catch(() => [] as string[])) open.add(layer);
  }
  return open;
}

export interface OfflineMerge extends MergeStep {
  ok: boolean;
  error?: string;
}

/**
 * For each layer to keep that no running VM has open: merge away the layers between it and the next layer
 * to keep below it (qemu-img safe rebase). Layers that some VM has open are merged by their host instead.
 */
export async function mergeClosedLayers(keep: Set<string>, open: Set<string>): Promise<OfflineMerge[]> {
  const merges: OfflineMerge[] = [];
  for (const layer of [...keep].sort()) {
    if (open.has(layer) || !existsSync(layer)) continue;
    const infos = await imageChain(layer).catch(() => undefined);
    if (!infos) continue; // damaged: retention and validation report it; never touch it here
    const step = planMerges(infos.map((i) => i.filename), (l) => keep.has(l))[0];
    if (!step || step.into !== layer) continue;
    const baseFormat = infos.find((i) => i.filename === step.base)?.format ?? 'qcow2';
    try {
      await rebasePreservingContent(layer, step.base, baseFormat);
      merges.push({ ...step, ok: true });
      log.info({ into: step.into, base: step.base, dropped: step.drops.length }, 'merged disk layers (offline)');
    } catch (err) {
      merges.push({ ...step, ok: false, error: (err as Error).message });
      log.warn({ into: step.into, err: (err as Error).message }, 'offline merge failed; the layers stay');
    }
  }
  return merges;
}
