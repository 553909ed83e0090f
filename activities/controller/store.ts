// The checkpoint store, as seen by the controller: begin, commit, abort, find, list, verify, delete and
// garbage-collect. Commit is the only step that makes a checkpoint exist (manifest.json, written
// atomically); everything read back from the store is validated before it is believed.
import { constants, existsSync } from 'node:fs';
import { access, readdir, readFile, rm, stat, statfs, open } from 'node:fs/promises';
import { join } from 'node:path';
import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import { z } from 'zod';
import { describeZodError } from '../../common/errors';
import { fsyncDir, mkdirDurable, writeFileAtomic } from '../../node/fsutil';
import { failureRecordSchema, manifestSchema, resumeRecordSchema, type Manifest } from '../../common/manifest';
import { absolutePathSchema, CHECKPOINT_ID_PATTERN } from '../../common/names';
import { storeLayout } from '../../common/store-layout';
import { childLogger } from '../../node/logger';
import { sha256File } from '../../node/hasher';
import { testHook } from '../test-hooks';
import { chainProblems } from './chains';
import { collectGarbage } from './garbage';
import { earlierUse, recordRun } from './checkpoint-ids';
import type {
  AbortCheckpointRequest,
  BeginCheckpointReply,
  BeginCheckpointRequest,
  CheckpointSummary,
  DeleteCheckpointRequest,
  DeleteReport,
  FailedCheckpointSummary,
  FindCheckpointRequest,
  GarbageReport,
  ListCheckpointsReply,
  RecordResumeRequest,
  VerifyReport,
} from './types';

const log = childLogger('store');

function fail(message: string, type: string): never {
  throw ApplicationFailure.nonRetryable(message, type);
}

async function readJson(path: string): Promise<unknown> {
  const text = await readFile(path, 'utf8');
  try {
    return JSON.parse(text);
  } catch {
    fail(`${path} is not valid JSON`, 'CorruptManifest');
  }
}

/** Reads and validates a manifest; undefined if the file does not exist. */
export async function readManifest(path: string): Promise<Manifest | undefined> {
  if (!existsSync(path)) return undefined;
  const parsed = manifestSchema.safeParse(await readJson(path));
  if (!parsed.success) fail(describeZodError(parsed.error, `manifest ${path}`), 'CorruptManifest');
  return parsed.data;
}

async function checkpointIds(store: string, cluster: string): Promise<string[]> {
  try {
    return (await readdir(storeLayout.clusterDir(store, cluster), { withFileTypes: true }))
      .filter((e) => e.isDirectory() && CHECKPOINT_ID_PATTERN.test(e.name))
      .map((e) => e.name);
  } catch {
    return [];
  }
}

export async function committedManifests(store: string, cluster: string): Promise<Manifest[]> {
  const out: Manifest[] = [];
  for (const id of await checkpointIds(store, cluster)) {
    const manifest = await readManifest(storeLayout.manifest(store, cluster, id)).catch((err: unknown) => {
      log.warn({ err, id }, 'skipping a checkpoint whose manifest does not validate');
      return undefined;
    });
    if (manifest) out.push(manifest);
  }
  return out.sort((a, b) => a.committedAt.localeCompare(b.committedAt));
}

export async function beginCheckpoint(req: BeginCheckpointRequest): Promise<BeginCheckpointReply> {
  const dir = storeLayout.checkpointDir(req.store, req.cluster, req.checkpointId);
  try {
    await mkdirDurable(storeLayout.clusterDir(req.store, req.cluster));
  } catch (err) {
    // A recursive mkdir reports ENOENT for a read-only file system: ask the store itself why.
    const why = await access(req.store, constants.W_OK).then(
      () => (err as NodeJS.ErrnoException).code ?? String(err),
      (e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? 'it does not exist' : e.code ?? String(e)),
    );
    fail(`checkpoint store ${req.store} is not writable (${why})`, 'StoreNotWritable');
  }
  const existing = await readManifest(storeLayout.manifest(req.store, req.cluster, req.checkpointId));
  if (existing && existing.runId !== req.runId) {
    fail(`checkpoint ${req.checkpointId} of cluster ${req.cluster} already exists`, 'CheckpointExists');
  }
  const used = existing ? undefined : await earlierUse(req);
  if (used) fail(`checkpoint id ${req.checkpointId} was used before: ${used}; give the checkpoint another id`, 'CheckpointIdUsed');
  // We hold the cluster lock: any other folder without a manifest is a leftover of a crash; clean it away.
  await removePartials(req.store, req.cluster, req.checkpointId);
  await mkdirDurable(dir);
  await recordRun(dir, req);
  // Prove the store is writable and durable here before pausing anything.
  const probe = join(dir, '.probe');
  const handle = await open(probe, 'w', 0o600);
  try {
    await handle.writeFile('vccr');
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rm(probe, { force: true });
  fsyncDir(dir);
  const fs = await statfs(dir);
  return { dir, freeBytes: Number(fs.bavail) * Number(fs.bsize) };
}

/**
 * Removes every checkpoint folder without a committed manifest (but `keep`): leftovers of a crashed
 * checkpoint or of a delete cut short after its manifest was removed. Only under the cluster lock.
 */
export async function removePartials(store: string, cluster: string, keep?: string): Promise<string[]> {
  const removed: string[] = [];
  for (const id of await checkpointIds(store, cluster)) {
    if (id === keep) continue;
    if (!existsSync(storeLayout.manifest(store, cluster, id))) {
      await rm(storeLayout.checkpointDir(store, cluster, id), { recursive: true, force: true });
      removed.push(id);
      log.info({ cluster, checkpoint: id }, 'removed an uncommitted checkpoint folder');
    }
  }
  return removed;
}

/**
 * Commits a checkpoint: writes its manifest. `notAfter` (epoch ms) is the end of the pause window: after
 * it the hosts' pause leases may run out (their watchdogs resume the VMs), so a commit is refused then.
 */
export async function commitCheckpoint(req: { manifest: Manifest; notAfter?: number }): Promise<{ path: string }> {
  const parsed = manifestSchema.safeParse(req.manifest);
  if (!parsed.success) fail(describeZodError(parsed.error, 'manifest'), 'InvalidManifest');
  const manifest = parsed.data;
  const { store } = manifest.spec;
  const path = storeLayout.manifest(store, manifest.cluster, manifest.checkpointId);
  const existing = await readManifest(path);
  if (existing) {
    if (existing.runId === manifest.runId) return { path }; // a retry after the commit happened
    fail(`checkpoint ${manifest.checkpointId} already exists`, 'CheckpointExists');
  }
  if (req.notAfter !== undefined && Date.now() > req.notAfter) {
    fail(`the pause window of checkpoint ${manifest.checkpointId} ended before its commit`, 'PauseBoundExceeded');
  }
  for (const vm of manifest.vms) {
    const file = storeLayout.stateFile(store, manifest.cluster, manifest.checkpointId, vm.name);
    const st = await stat(file).catch(() => undefined);
    if (!st) fail(`state file of VM ${vm.name} is missing: ${file}`, 'MissingStateFile');
    if (st.size !== vm.state.size) fail(`state file ${file} has ${st.size} bytes, expected ${vm.state.size}`, 'StateFileSize');
    for (const disk of vm.disks) {
      if (!existsSync(disk.frozen)) fail(`frozen disk layer ${disk.frozen} of VM ${vm.name} is missing`, 'MissingDiskLayer');
    }
  }
  await writeFileAtomic(path, JSON.stringify(manifest, null, 2) + '\n', 0o600);
  await testHook('commit:after-write');
  log.info({ cluster: manifest.cluster, checkpoint: manifest.checkpointId, bytes: manifest.totalBytes }, 'checkpoint committed');
  return { path };
}

export async function recordResume(req: RecordResumeRequest): Promise<void> {
  const record = resumeRecordSchema.parse(req.record);
  await writeFileAtomic(storeLayout.resumeRecord(req.store, req.cluster, record.checkpointId), JSON.stringify(record, null, 2) + '\n');
}

/**
 * Undoes what a failed checkpoint left in the store and records why it failed. Best effort by design: it
 * runs on the failure path, where the store itself may be the problem (full, read-only); it reports what it
 * could not do instead of throwing, so the rest of the undo (resuming VMs, releasing the lock) goes on.
 */
export async function abortCheckpoint(req: AbortCheckpointRequest): Promise<{ problems: string[] }> {
  const problems: string[] = [];
  const dir = storeLayout.checkpointDir(req.store, req.cluster, req.checkpointId);
  const existing = await readManifest(storeLayout.manifest(req.store, req.cluster, req.checkpointId)).catch(() => undefined);
  if (existing && existing.runId !== req.runId) {
    // This run failed because the id was taken: the committed checkpoint of that id is not ours to touch.
    log.warn({ checkpoint: req.checkpointId }, 'not touching a checkpoint another run committed');
    return { problems };
  }
  // Manifest first, durably: from then on the checkpoint does not exist, whatever interrupts the rest —
  // never a manifest left naming files already removed. (If it cannot go, nothing else does.)
  if (existsSync(dir)) {
    try {
      await rm(storeLayout.manifest(req.store, req.cluster, req.checkpointId), { force: true });
      fsyncDir(dir);
    } catch (err) {
      problems.push(`could not remove the manifest of ${dir}: ${(err as Error).message}`);
      return { problems };
    }
  }
  // A save abandoned a moment ago may still be cleaning up its partial file in there: retry briefly.
  for (let attempt = 1; ; attempt++) {
    try {
      await rm(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 100 });
      break;
    } catch (err) {
      if (attempt < 5) {
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      problems.push(`could not remove ${dir}: ${(err as Error).message}`);
      break;
    }
  }
  try {
    await mkdirDurable(storeLayout.failedDir(req.store, req.cluster));
    const record = failureRecordSchema.parse({
      cluster: req.cluster,
      checkpointId: req.checkpointId,
      workflowId: req.workflowId,
      failedAt: new Date().toISOString(),
      phase: req.phase,
      reason: req.reason,
    });
    await writeFileAtomic(storeLayout.failedRecord(req.store, req.cluster, req.checkpointId), JSON.stringify(record, null, 2) + '\n');
  } catch (err) {
    problems.push(`could not record the failure in the store: ${(err as Error).message}`);
  }
  log.warn({ cluster: req.cluster, checkpoint: req.checkpointId, phase: req.phase, reason: req.reason, problems }, 'checkpoint failed');
  return { problems };
}

/** The manifest of a committed checkpoint (the newest if no id), after checking its files are all there. */
export async function findCheckpoint(req: FindCheckpointRequest): Promise<Manifest> {
  let manifest: Manifest | undefined;
  if (req.checkpointId) {
    manifest = await readManifest(storeLayout.manifest(req.store, req.cluster, req.checkpointId));
    if (!manifest) fail(`unknown checkpoint ${req.checkpointId} of cluster ${req.cluster} (no committed manifest in ${req.store})`, 'UnknownCheckpoint');
  } else {
    manifest = (await committedManifests(req.store, req.cluster)).at(-1);
    if (!manifest) fail(`cluster ${req.cluster} has no committed checkpoint in ${req.store}`, 'UnknownCheckpoint');
  }
  if (manifest.cluster !== req.cluster || manifest.checkpointId !== (req.checkpointId ?? manifest.checkpointId)) {
    fail(`manifest of ${req.checkpointId} names another checkpoint (${manifest.cluster}/${manifest.checkpointId})`, 'CorruptManifest');
  }
  const problems = await structuralProblems(req.store, manifest);
  if (problems.length) fail(`checkpoint ${manifest.checkpointId} is damaged: ${problems.join('; ')}`, 'CorruptCheckpoint');
  return manifest;
}

/**
 * Disk layers a manifest may name: files under this cluster's _disks folder, and — only at the bottom of
 * a chain — the VM's own base image from its recorded configuration. A manifest pointing anywhere else
 * (edited by hand, or hostile) would make a restore read or write files outside the store.
 */
function layerProblems(store: string, manifest: Manifest): string[] {
  const disksDir = `${storeLayout.disksDir(store, manifest.cluster)}/`;
  const problems: string[] = [];
  for (const vm of manifest.vms) {
    for (const disk of vm.disks) {
      const chain = [disk.frozen, ...disk.backing];
      const base = vm.config.disks.find((d) => d.id === disk.id)?.image;
      chain.forEach((layer, i) => {
        const safe = absolutePathSchema.safeParse(layer).success;
        const inStore = safe && layer.startsWith(disksDir);
        const isBase = safe && i === chain.length - 1 && layer === base;
        if (!inStore && !isBase) problems.push(`disk layer ${layer} of VM ${vm.name} is outside the store`);
      });
    }
  }
  return problems;
}

/** Missing files, wrong sizes, missing disk layers: everything short of reading the data. */
async function structuralProblems(store: string, manifest: Manifest): Promise<string[]> {
  const problems: string[] = layerProblems(store, manifest);
  if (problems.length) return problems;
  for (const vm of manifest.vms) {
    const file = storeLayout.stateFile(store, manifest.cluster, manifest.checkpointId, vm.name);
    const st = await stat(file).catch(() => undefined);
    if (!st) problems.push(`state file ${file} is missing`);
    else if (st.size !== vm.state.size) problems.push(`state file ${file} has ${st.size} bytes, the manifest says ${vm.state.size}`);
  }
  // Disk layers: followed through their qcow2 headers, which merges may have shortened (chains.ts).
  problems.push(...(await chainProblems(manifest)));
  return problems;
}

export async function listCheckpoints(req: { store: string; cluster: string }): Promise<ListCheckpointsReply> {
  const committed: CheckpointSummary[] = (await committedManifests(req.store, req.cluster)).map((m) => ({
    checkpointId: m.checkpointId,
    committedAt: m.committedAt,
    vms: m.vms.length,
    totalBytes: m.totalBytes,
    hosts: [...new Set(m.vms.map((vm) => vm.host))].sort(),
    placement: Object.fromEntries(m.vms.map((vm) => [vm.name, vm.host])),
  }));
  const failed: FailedCheckpointSummary[] = [];
  let names: string[] = [];
  try {
    names = await readdir(storeLayout.failedDir(req.store, req.cluster));
  } catch {
    names = [];
  }
  for (const name of names.filter((n) => n.endsWith('.json'))) {
    const parsed = failureRecordSchema.safeParse(await readJson(join(storeLayout.failedDir(req.store, req.cluster), name)).catch(() => null));
    if (parsed.success) failed.push({ checkpointId: parsed.data.checkpointId, failedAt: parsed.data.failedAt, phase: parsed.data.phase, reason: parsed.data.reason });
  }
  failed.sort((a, b) => a.failedAt.localeCompare(b.failedAt));
  return { committed, failed };
}

export async function showCheckpoint(req: FindCheckpointRequest): Promise<{ manifest: Manifest; resume?: z.infer<typeof resumeRecordSchema> }> {
  const manifest = await findCheckpoint(req);
  const resumePath = storeLayout.resumeRecord(req.store, req.cluster, manifest.checkpointId);
  const resume = existsSync(resumePath) ? resumeRecordSchema.safeParse(await readJson(resumePath)) : undefined;
  return { manifest, ...(resume?.success ? { resume: resume.data } : {}) };
}

/** Reads every state file and compares its sha256 with the manifest's; also checks every disk layer exists. */
export async function verifyCheckpoint(req: FindCheckpointRequest & { checkpointId: string }): Promise<VerifyReport> {
  const manifestPath = storeLayout.manifest(req.store, req.cluster, req.checkpointId);
  let manifest: Manifest | undefined;
  try {
    manifest = await readManifest(manifestPath);
  } catch (err) {
    return { checkpointId: req.checkpointId, ok: false, problems: [err instanceof Error ? err.message : String(err)], files: [] };
  }
  if (!manifest) fail(`unknown checkpoint ${req.checkpointId} of cluster ${req.cluster}`, 'UnknownCheckpoint');
  const problems = await structuralProblems(req.store, manifest);
  const files: VerifyReport['files'] = [];
  for (const vm of manifest.vms) {
    const file = storeLayout.stateFile(req.store, req.cluster, manifest.checkpointId, vm.name);
    if (!existsSync(file)) continue;
    const sha256 = await sha256File(file, (bytes) => heartbeat({ file, bytes }));
    const size = (await stat(file)).size;
    const ok = sha256 === vm.state.sha256 && size === vm.state.size;
    if (!ok) problems.push(`state file ${file} does not match its checksum`);
    files.push({ file, size, sha256, ok });
  }
  return { checkpointId: manifest.checkpointId, ok: problems.length === 0, problems, files };
}

/** Removes a committed checkpoint, then every disk layer nothing refers to any more. */
export async function deleteCheckpoint(req: DeleteCheckpointRequest): Promise<DeleteReport & GarbageReport> {
  const manifest = await readManifest(storeLayout.manifest(req.store, req.cluster, req.checkpointId)).catch(() => undefined);
  const dir = storeLayout.checkpointDir(req.store, req.cluster, req.checkpointId);
  if (!manifest && !existsSync(dir)) fail(`unknown checkpoint ${req.checkpointId} of cluster ${req.cluster}`, 'UnknownCheckpoint');
  const removedFiles = await removeCheckpointFiles(req.store, req.cluster, req.checkpointId);
  // The checkpoint is gone already: whatever goes wrong collecting garbage must not make the delete fail.
  const garbage = await collectGarbage({ store: req.store, cluster: req.cluster }).catch((err: unknown) => ({
    removedLayers: [],
    removedPartials: [],
    skipped: `garbage collection failed: ${err instanceof Error ? err.message : String(err)}`,
  }));
  return { checkpointId: req.checkpointId, removedFiles, ...garbage };
}

/** Removes a checkpoint's folder, manifest first: from that moment it does not exist, even if the rest is interrupted. */
export async function removeCheckpointFiles(store: string, cluster: string, checkpointId: string): Promise<string[]> {
  const dir = storeLayout.checkpointDir(store, cluster, checkpointId);
  const removedFiles = existsSync(dir) ? (await readdir(dir)).map((f) => join(dir, f)) : [];
  await rm(storeLayout.manifest(store, cluster, checkpointId), { force: true });
  fsyncDir(dir);
  await rm(dir, { recursive: true, force: true });
  return removedFiles;
}
