// The store barrier: each host marks in the checkpoint folder (on the shared store) that every VM it captures
// is stopped; once a host has read every host's mark, every guest of the cut is stopped, by causality through
// the store (a mark is written after its host's stops, read before any resume), whatever the hosts' clocks
// say — so its guests may run again without waiting for the workflow to say so.
//   live mode  a host starts its snapshots (which resume its guests) once every host has marked, or at
//              T + gap, whichever comes first; the workflow's cut check, from QEMU's own STOP/RESUME times,
//              decides whether the checkpoint commits
//   stop mode  a host resumes each VM once its state file is durable and every host has marked; a host
//              that does not see every mark within a short window leaves its VMs to the workflow's
//              finishSaves, as without the barrier
//   restore    a mark says every VM of the host has loaded its state; a host resumes its VMs once every
//              host has marked, else the workflow's resume step does
// Marks are removed by finishSaves / the live writes' end, and whatever is left (a restore's, a crashed
// run's) by garbage collection, which runs under the cluster lock when no operation can be reading them.
import { watch } from 'node:fs';
import { mkdir, readdir, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { storeLayout } from '../../common/store-layout';
import { testHook } from '../test-hooks';
import { hostNow } from './clock';

/**
 * How often a waiting host reads the marks when no change notice came (a store without inotify, such as
 * NFS): often enough to add little to a pause, rarely enough that 16 waiting hosts leave the CPU alone.
 */
const POLL_MS = 5;

export interface BarrierRef {
  store: string;
  cluster: string;
  checkpointId: string;
  runId: string;
}

function barrierDir(ref: BarrierRef): string {
  return storeLayout.barrierDir(ref.store, ref.cluster, ref.checkpointId);
}

function markName(host: string, runId: string): string {
  return `${host}.${runId}`;
}

export class StoreBarrier {
  private remaining: number;
  private marked: Promise<void> | undefined;
  /** One reading of the marks per host, shared by every VM waiting on it. */
  private reading: Promise<'marked' | 'deadline'> | undefined;

  /**
   * `hosts`: every host of the cut (this one included); `vms`: how many VMs of this host must reach the
   * barrier; `until`: the latest any of them waits (host clock).
   */
  constructor(
    private readonly ref: BarrierRef,
    private readonly host: string,
    private readonly hosts: readonly string[],
    vms: number,
    private readonly until: number,
  ) {
    this.remaining = vms;
  }

  /** One of this host's VMs reached the barrier (stopped, loaded); the last one writes the host's mark. */
  reached(): void {
    this.remaining -= 1;
    if (this.remaining !== 0) return;
    this.marked = this.mark();
    // A mark that cannot be written (a read-only or full store) only means no host resumes early; a reading
    // awaits it too, but nobody may be reading, and an unhandled rejection would end the worker.
    this.marked.catch(() => undefined);
  }

  private async mark(): Promise<void> {
    const dir = barrierDir(this.ref);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(join(dir, markName(this.host, this.ref.runId)), '');
  }

  /** Resolves once every host has marked, or at `deadline` (host clock, at most `until`), whichever comes first. */
  async wait(deadline: number, vm: string): Promise<'marked' | 'deadline'> {
    // A test makes this host ignore the marks, so the gap alone decides (the negative control forced through).
    const ignoreMarks = await testHook('live:barrier', vm).then(() => false, () => true);
    if (ignoreMarks) return 'deadline';
    this.reading ??= this.readMarks();
    let timer: NodeJS.Timeout | undefined;
    const atDeadline = new Promise<'deadline'>((resolve) => (timer = setTimeout(() => resolve('deadline'), Math.max(0, deadline - hostNow()))));
    try {
      return await Promise.race([this.reading, atDeadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads the marks until all are there ('marked') or `until` has passed ('deadline'). */
  private async readMarks(): Promise<'marked' | 'deadline'> {
    // This host's own mark makes the folder; a reading never does: one that outlives the marks' cleanup
    // (clearBarrierMark) must not leave an empty folder behind in the checkpoint.
    if (this.marked) await this.marked.catch(() => undefined);
    const dir = barrierDir(this.ref);
    const wanted = this.hosts.map((h) => markName(h, this.ref.runId));
    const allMarked = async () => {
      const present = new Set(await readdir(dir).catch(() => [] as string[]));
      return wanted.every((m) => present.has(m));
    };
    // inotify tells at once where the store is local; the poll covers stores where it does not (NFS).
    let wake: () => void = () => undefined;
    const watcher = (() => {
      try {
        // An 'error' event (the folder removed meanwhile) must not end the worker: the poll carries on.
        return watch(dir, () => wake()).on('error', () => undefined);
      } catch {
        return undefined;
      }
    })();
    try {
      for (;;) {
        if (this.marked) await this.marked.catch(() => undefined);
        // Read at least once: a wait that begins after `until` still sees marks that are all there.
        if (await allMarked()) return 'marked';
        if (hostNow() >= this.until) return 'deadline';
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.max(0, Math.min(POLL_MS, this.until - hostNow())));
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    } finally {
      watcher?.close();
    }
  }
}

/** Removes this host's mark (and the folder once empty): called when the capture is over on every host. */
export async function clearBarrierMark(ref: BarrierRef, host: string): Promise<void> {
  const dir = barrierDir(ref);
  await rm(join(dir, markName(host, ref.runId)), { force: true });
  await rmdir(dir).catch(() => undefined);
}
