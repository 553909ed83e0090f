// After a restart from a checkpoint: the disk journal and memfill carry on exactly from where they were
// when the checkpoint paused them (the ring's own check is in ring-check.ts). Each reads what the VM had
// printed up to the pause (the manifest's console offset) and what it printed since the restore.
import assert from 'node:assert/strict';
import type { Manifest } from '../../common/manifest';
import type { TestBed } from '../../harness/testbed';
import { sleep } from '../../node/proc';
import { consoleAtPause, sinceRestoreFrom } from '../../harness/ring';
import { journalErrors, journalWrites } from './journal';

export { journalWrites, journalErrors } from './journal';
export const memfillAlive = (text: string) => [...text.matchAll(/^MEMFILL ALIVE n=(\d+)$/gm)].map((m) => Number(m[1]));
export const memfillErrors = (text: string) => [...text.matchAll(/^MEMFILL (?:ERROR|FATAL) .*$/gm)].map((m) => m[0]);

function before(manifest: Manifest, vm: string): string {
  const entry = manifest.vms.find((v) => v.name === vm);
  assert.ok(entry?.console, `manifest records ${vm}'s console`);
  return consoleAtPause(entry).text;
}

/** Waits until the restored VM printed enough progress lines or an error; returns its text since the restore. */
async function after(path: string, manifest: Manifest, vm: string, done: (text: string) => boolean, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let text = sinceRestoreFrom(manifest, vm, path);
  while (!done(text) && Date.now() < deadline) {
    await sleep(200);
    text = sinceRestoreFrom(manifest, vm, path);
  }
  return text;
}

/** The last journal record `vm` had reported when the checkpoint paused it (-1: none yet). */
export function journalAtCheckpoint(manifest: Manifest, vm: string): number {
  return journalWrites(before(manifest, vm)).at(-1) ?? -1;
}

/**
 * The journal's first record after the restore follows the last one before the pause, at least `minRecords`
 * follow, none is out of place and the writer reports no disk-behind/ahead-of-memory error.
 */
export async function assertJournalContinued(path: string, manifest: Manifest, vm: string, minRecords = 5): Promise<void> {
  const last = journalAtCheckpoint(manifest, vm);
  const text = await after(path, manifest, vm, (t) => journalWrites(t).length >= minRecords || journalErrors(t).length > 0, 90_000);
  assert.deepEqual(journalErrors(text), [], `${vm}: the restored disk matches the restored memory`);
  assert.doesNotMatch(text, /^JOURNAL DONE/m, `${vm}: the writer goes on`);
  const seqs = journalWrites(text);
  assert.ok(seqs.length >= minRecords, `${vm}: the journal goes on after the restore (${seqs.length} records)`);
  assert.deepEqual(seqs, seqs.map((_, i) => last + 1 + i), `${vm}: records continue from ${last}`);
}

/** memfill's memory check holds after the restore and its counter continues from where it was. */
export async function assertMemfillContinued(bed: TestBed, cluster: string, manifest: Manifest, vm: string, host: string): Promise<void> {
  const text0 = before(manifest, vm);
  assert.match(text0, /^MEMFILL READY/m, `${vm} had filled its memory before the checkpoint`);
  // Its counter starts at 0 once the memory is filled: no ALIVE line yet means fewer than 100 rounds.
  const last = memfillAlive(text0).at(-1) ?? 0;
  const text = await after(bed.consoleLog(host, cluster, vm), manifest, vm, (t) => memfillAlive(t).length >= 2 || memfillErrors(t).length > 0, 60_000);
  assert.deepEqual(memfillErrors(text), [], `${vm}: memory intact after the restore`);
  const counts = memfillAlive(text);
  assert.ok(counts.length >= 2, `${vm}: memfill goes on after the restore`);
  assert.equal(counts[0], last + 100, `${vm}: memfill's counter continues from ${last}`);
}
