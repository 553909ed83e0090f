// Retention in the store, run by protectCluster while it holds the cluster lock (so no restart is reading
// a checkpoint it deletes and no checkpoint is being written): verify-and-mark new checkpoints, apply the
// policy to committed checkpoints and to failure records, merge disk layers nobody has open, collect
// garbage, and record what was deleted and why.
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../../node/fsutil';
import { failureRecordSchema, type Manifest } from '../../common/manifest';
import { decideRetention, type RetentionDecision } from '../../common/retention';
import { retentionPolicySchema, type RetentionPolicy } from '../../common/protection';
import { storeLayout } from '../../common/store-layout';
import { childLogger } from '../../node/logger';
import { committedManifests, removeCheckpointFiles, removePartials, verifyCheckpoint } from './store';
import { collectGarbage } from './garbage';
import { chainProblems, mergeClosedLayers, openLayers, type OfflineMerge } from './chains';
import type { VerifyReport } from './types';

const log = childLogger('retention');
/** Retention records kept in _retention/ (older ones are removed). */
const RECORDS_KEPT = 100;

const verifiedSchema = z.object({ checkpointId: z.string(), verifiedAt: z.string(), files: z.number().int() }).strict();

/** Reads every state file back and, if all match, records that the checkpoint was verified. */
export async function verifyAndMark(req: { store: string; cluster: string; checkpointId: string }): Promise<VerifyReport> {
  const report = await verifyCheckpoint(req);
  if (report.ok) {
    const record = { checkpointId: req.checkpointId, verifiedAt: new Date().toISOString(), files: report.files.length };
    await writeFileAtomic(storeLayout.verifiedRecord(req.store, req.cluster, req.checkpointId), JSON.stringify(record) + '\n');
  }
  return report;
}

async function wasVerified(store: string, cluster: string, id: string): Promise<boolean> {
  const path = storeLayout.verifiedRecord(store, cluster, id);
  if (!existsSync(path)) return false;
  const parsed = verifiedSchema.safeParse(await readFile(path, 'utf8').then((t) => JSON.parse(t) as unknown).catch(() => null));
  return parsed.success && parsed.data.checkpointId === id;
}

/** Sizes still right and disk chains intact: a cheap check that a verified checkpoint is still whole. */
async function stillWhole(store: string, m: Manifest): Promise<boolean> {
  for (const vm of m.vms) {
    const st = await stat(storeLayout.stateFile(store, m.cluster, m.checkpointId, vm.name)).catch(() => undefined);
    if (!st || st.size !== vm.state.size) return false;
  }
  return (await chainProblems(m)).length === 0;
}

/** The checkpoint retention must never delete: the newest verified one that is still whole (else the newest whole one). */
async function pinnedCheckpoint(store: string, manifests: Manifest[]): Promise<Record<string, string>> {
  const newestFirst = [...manifests].reverse();
  for (const m of newestFirst) {
    if ((await wasVerified(store, m.cluster, m.checkpointId)) && (await stillWhole(store, m))) {
      return { [m.checkpointId]: 'newest committed and verified checkpoint (what a recovery would restore)' };
    }
  }
  for (const m of newestFirst) {
    if (await stillWhole(store, m)) return { [m.checkpointId]: 'newest intact checkpoint (none verified yet)' };
  }
  return {};
}

export interface RetentionResult {
  checkpoints: RetentionDecision[];
  deleted: string[];
  failedRecords: RetentionDecision[];
  /** Frozen disk layers of the checkpoints kept: merging keeps them, and their views of the disk. */
  keepLayers: string[];
  problems: string[];
}

/** Applies the policy: deletes the checkpoints and failure records it no longer keeps. Under the cluster lock. */
export async function applyRetention(req: { store: string; cluster: string; policy: RetentionPolicy }): Promise<RetentionResult> {
  const policy = retentionPolicySchema.parse(req.policy);
  const manifests = await committedManifests(req.store, req.cluster);
  const pinned = await pinnedCheckpoint(req.store, manifests);
  const checkpoints = decideRetention(
    manifests.map((m) => ({ id: m.checkpointId, at: Date.parse(m.committedAt) })),
    policy,
    pinned,
  );
  const problems: string[] = [];
  const deleted: string[] = [];
  for (const d of checkpoints.filter((c) => !c.keep)) {
    try {
      await removeCheckpointFiles(req.store, req.cluster, d.id);
      deleted.push(d.id);
    } catch (err) {
      problems.push(`could not delete ${d.id}: ${(err as Error).message}`);
    }
  }
  // A delete cut short by a crash (manifest gone, folder left) is finished here: its retry no longer lists it.
  deleted.push(...(await removePartials(req.store, req.cluster)));
  const failedRecords = await pruneFailureRecords(req.store, req.cluster, policy, problems);
  const kept = new Set(checkpoints.filter((c) => c.keep).map((c) => c.id));
  const keepLayers = manifests.filter((m) => kept.has(m.checkpointId)).flatMap((m) => m.vms.flatMap((vm) => vm.disks.map((d) => d.frozen)));
  log.info({ cluster: req.cluster, kept: kept.size, deleted, failedDeleted: failedRecords.filter((f) => !f.keep).length }, 'retention applied');
  return { checkpoints, deleted, failedRecords, keepLayers, problems };
}

/** Failure records are pruned by the same policy (by when they failed). */
async function pruneFailureRecords(store: string, cluster: string, policy: RetentionPolicy, problems: string[]): Promise<RetentionDecision[]> {
  const dir = storeLayout.failedDir(store, cluster);
  const items: Array<{ id: string; at: number; file: string }> = [];
  for (const name of (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json'))) {
    const text = await readFile(join(dir, name), 'utf8').catch(() => '');
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
    const parsed = failureRecordSchema.safeParse(json);
    // A record we cannot read is left alone: never delete what we cannot identify.
    if (parsed.success) items.push({ id: parsed.data.checkpointId, at: Date.parse(parsed.data.failedAt), file: join(dir, name) });
  }
  const decisions = decideRetention(items, policy);
  for (const d of decisions.filter((x) => !x.keep)) {
    const file = items.find((i) => i.id === d.id)?.file;
    if (file) await rm(file, { force: true }).catch((err: Error) => problems.push(`could not delete failure record ${file}: ${err.message}`));
  }
  return decisions;
}

export interface StoreCompaction {
  merges: OfflineMerge[];
  removedLayers: string[];
}

/**
 * Merges layers of kept checkpoints that no running VM has open (`live`: the chains hosts reported; every
 * chain.json counts too), then removes every layer no chain refers to any more.
 */
export async function compactStore(req: { store: string; cluster: string; keepLayers: string[]; live: string[][] }): Promise<StoreCompaction> {
  const open = await openLayers(req.store, req.cluster, req.live);
  const merges = await mergeClosedLayers(new Set(req.keepLayers), open);
  const garbage = await collectGarbage({ store: req.store, cluster: req.cluster, open: req.live });
  return { merges, removedLayers: garbage.removedLayers };
}

/** Writes one retention record to _retention/ (and keeps only the newest RECORDS_KEPT). */
export async function recordRetention(req: { store: string; cluster: string; record: Record<string, unknown> }): Promise<string> {
  const dir = storeLayout.retentionDir(req.store, req.cluster);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFileAtomic(path, JSON.stringify(req.record, null, 2) + '\n');
  const names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
  for (const old of names.slice(0, Math.max(0, names.length - RECORDS_KEPT))) await rm(join(dir, old), { force: true });
  return path;
}
