// Garbage collection of disk layers: deletes layers under <store>/<cluster>/_disks that no committed
// manifest and no running VM's chain (chain.json) names (and the store barrier's leftover marks). It runs only under the cluster lock (the delete
// and restart workflows hold it), so no checkpoint adds layers meanwhile; and it deletes a layer only when
// it can prove nothing needs it: if it cannot read a checkpoint folder, a manifest or the store, it stops
// and says what it could not read.
import { existsSync, type Dirent } from 'node:fs';
import { lstat, readdir, readFile, realpath, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { describeZodError } from '../../common/errors';
import { manifestSchema } from '../../common/manifest';
import { CHECKPOINT_ID_PATTERN } from '../../common/names';
import { storeLayout, type DiskChainRecord } from '../../common/store-layout';
import { childLogger } from '../../node/logger';
import { testHook } from '../test-hooks';
import { chainFiles } from '../qemu-img';
import { currentChain } from './chains';
import type { GarbageReport } from './types';

const log = childLogger('garbage');

const diskChainSchema = z.object({ vm: z.string(), disk: z.string(), active: z.string(), backing: z.array(z.string()) }).strict();

/** Something garbage collection could not read: it must not guess what that names. */
class Unreadable extends Error {}

const codeOf = (err: unknown) => (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));

async function listDir(dir: string, optional: boolean): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (optional && codeOf(err) === 'ENOENT') return [];
    throw new Unreadable(`cannot list ${dir} (${codeOf(err)})`);
  }
}

/** Every layer a committed manifest names. */
async function layersOfManifests(store: string, cluster: string): Promise<Set<string>> {
  const named = new Set<string>();
  const clusterDir = storeLayout.clusterDir(store, cluster);
  let entries: Dirent[];
  try {
    await testHook('gc:list-checkpoints');
    entries = await listDir(clusterDir, true);
  } catch (err) {
    throw err instanceof Unreadable ? err : new Unreadable(`cannot list ${clusterDir} (${codeOf(err)})`);
  }
  for (const entry of entries) {
    if (!CHECKPOINT_ID_PATTERN.test(entry.name)) continue; // _disks, _failed, temp files
    const path = storeLayout.manifest(store, cluster, entry.name);
    if (!entry.isDirectory()) throw new Unreadable(`${join(clusterDir, entry.name)} is not a checkpoint folder`);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if (codeOf(err) === 'ENOENT') continue; // never committed: names nothing
      throw new Unreadable(`cannot read ${path} (${codeOf(err)})`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Unreadable(`${path} is not valid JSON`);
    }
    const parsed = manifestSchema.safeParse(json);
    if (!parsed.success) throw new Unreadable(describeZodError(parsed.error, `manifest ${path}`));
    for (const vm of parsed.data.vms) {
      for (const d of vm.disks) {
        // Merges shorten a checkpoint's chain (its qcow2 headers are the truth, bounded by the recorded
        // chain); where the headers cannot be read, the recorded chain is kept whole — a superset.
        const recorded = [d.frozen, ...d.backing];
        const current = await currentChain(recorded);
        for (const layer of 'chain' in current ? current.chain : recorded) named.add(layer);
      }
    }
  }
  return named;
}

/**
 * The layers under _disks (<vm>/<disk>/*.qcow2), and every layer a running VM's chain names (added to
 * `named`). Only real folders and regular files count: a symlink is never followed (it could lead out of
 * the store), and whatever else an operator left there is left alone.
 */
async function layersOnDisk(store: string, cluster: string, named: Set<string>): Promise<string[]> {
  const disksDir = storeLayout.disksDir(store, cluster);
  const layers: string[] = [];
  for (const vm of (await listDir(disksDir, true)).filter((e) => e.isDirectory())) {
    for (const disk of (await listDir(join(disksDir, vm.name), false)).filter((e) => e.isDirectory())) {
      const dir = join(disksDir, vm.name, disk.name);
      const chainPath = join(dir, 'chain.json');
      if (existsSync(chainPath)) {
        const chain = await readFile(chainPath, 'utf8').then(
          (t) => diskChainSchema.safeParse(JSON.parse(t)),
          () => undefined,
        ).catch(() => undefined);
        if (!chain?.success) {
          // Unknown live chain: keep everything of this disk rather than guess.
          for (const f of await listDir(dir, false)) named.add(join(dir, f.name));
          continue;
        }
        const record: DiskChainRecord = chain.data;
        for (const layer of [record.active, ...record.backing]) named.add(layer);
        // The running top's headers may name layers chain.json does not know yet (never fewer).
        for (const layer of await chainFiles(record.active).catch(() => [] as string[])) named.add(layer);
      }
      await testHook('gc:after-chain', vm.name);
      for (const f of await listDir(dir, false)) if (f.isFile() && f.name.endsWith('.qcow2')) layers.push(join(dir, f.name));
    }
  }
  return layers;
}

/** Still a regular file (not a link) whose real folder lies inside the cluster's real _disks folder. */
async function isLayerFile(layer: string, realDisksDir: string): Promise<boolean> {
  const st = await lstat(layer).catch(() => undefined);
  if (!st?.isFile()) return false;
  const dir = await realpath(dirname(layer)).catch(() => '');
  return dir.startsWith(`${realDisksDir}/`);
}

/**
 * Deletes the unreferenced layers. Call it only under the cluster lock. Base images outside the store
 * are never candidates. When something cannot be read it deletes nothing and says so in `skipped`.
 * `open`: chains the hosts reported their running VMs have open (kept whatever the store says).
 */
export async function collectGarbage(req: { store: string; cluster: string; open?: string[][] }): Promise<GarbageReport> {
  await removeBarrierMarks(req.store, req.cluster);
  let named: Set<string>;
  let layers: string[];
  try {
    named = await layersOfManifests(req.store, req.cluster);
    for (const layer of (req.open ?? []).flat()) named.add(layer);
    layers = await layersOnDisk(req.store, req.cluster, named);
  } catch (err) {
    if (!(err instanceof Unreadable)) throw err;
    log.warn({ cluster: req.cluster, reason: err.message }, 'garbage collection stopped');
    return { removedLayers: [], removedPartials: [], skipped: `garbage collection stopped: ${err.message}` };
  }
  const removedLayers: string[] = [];
  const disksDir = await realpath(storeLayout.disksDir(req.store, req.cluster)).catch(() => undefined);
  for (const layer of layers) {
    if (named.has(layer) || !disksDir || !(await isLayerFile(layer, disksDir))) continue;
    await rm(layer, { force: true });
    removedLayers.push(layer);
  }
  if (removedLayers.length) log.info({ cluster: req.cluster, removed: removedLayers.length }, 'removed unreferenced disk layers');
  return { removedLayers, removedPartials: [] };
}

/**
 * The store barrier's marks left in checkpoint folders (a restore's, or those of a run that died before it
 * removed its own). Garbage collection runs under the cluster lock, so no operation is reading them; an
 * entry that is a link is never followed.
 */
async function removeBarrierMarks(store: string, cluster: string): Promise<void> {
  const entries = await readdir(storeLayout.clusterDir(store, cluster), { withFileTypes: true }).catch(() => [] as Dirent[]);
  let removed = 0;
  for (const entry of entries) {
    if (!entry.isDirectory() || entry.name.startsWith('_')) continue;
    const dir = storeLayout.barrierDir(store, cluster, entry.name);
    if (!(await lstat(dir).catch(() => undefined))?.isDirectory()) continue;
    await rm(dir, { recursive: true, force: true });
    removed++;
  }
  if (removed) log.info({ cluster, folders: removed }, 'removed store barrier marks left in checkpoint folders');
}
