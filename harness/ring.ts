// Reading what a VM printed up to a checkpoint's pause and since a restore from it (where a token ring
// stood, where a journal or a job was) — shared by the tests' continuity checks and the demo.
import type { Manifest } from '../common/manifest';
import { readConsole, ringTokens } from './console';

const RESTORE_MARKER = /^=== vccr: restoring from checkpoint (\S+) .*===$/gm;

type ManifestVm = Manifest['vms'][number];

/**
 * What a VM printed up to the checkpoint's pause (the manifest's console offset). The pause can fall inside a
 * line: the guest hands the UART a few bytes at a time and the rest waits in its tty buffer, which the
 * checkpoint holds. So `text` ends with the last whole line, and `cut` is the start of the cut one — a VM
 * restored from the checkpoint prints its rest first.
 */
export function consoleAtPause(vm: Pick<ManifestVm, 'name' | 'console'>): { text: string; cut: string } {
  if (!vm.console) throw new Error(`the manifest does not record ${vm.name}'s console`);
  const all = readConsole(vm.console.path, 0, vm.console.offsetAtPause);
  const end = all.lastIndexOf('\n') + 1;
  return { text: all.slice(0, end), cut: all.slice(end) };
}

/**
 * Text a VM printed since its most recent restore from `checkpointId`. Given `cut` (consoleAtPause), the line
 * the pause cut in two reads whole again at the start.
 */
export function sinceLastRestore(path: string, checkpointId: string, cut = ''): string {
  const text = readConsole(path);
  let start = -1;
  for (const m of text.matchAll(RESTORE_MARKER)) if (m[1] === checkpointId) start = (m.index ?? 0) + m[0].length;
  if (start < 0) throw new Error(`no restore marker for ${checkpointId} in ${path}`);
  // The marker's own line end comes first; the restored VM's output starts right after it.
  return cut === '' ? text.slice(start) : cut + text.slice(start + 1);
}

/** What `vm` printed since its restore from `manifest`'s checkpoint, read from `path` (its console now). */
export function sinceRestoreFrom(manifest: Pick<Manifest, 'checkpointId' | 'vms'>, vm: string, path: string): string {
  const entry = manifest.vms.find((v) => v.name === vm);
  if (!entry) throw new Error(`checkpoint ${manifest.checkpointId} has no VM ${vm}`);
  return sinceLastRestore(path, manifest.checkpointId, consoleAtPause(entry).cut);
}

/** Last token each node had received when it was paused, read from its console up to the recorded offset. */
export function tokensAtCheckpoint(manifest: Manifest, only?: string[]): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const vm of manifest.vms.filter((v) => !only || only.includes(v.name))) {
    const last = ringTokens(consoleAtPause(vm).text).at(-1);
    if (!last) throw new Error(`${vm.name} had received no token before the checkpoint`);
    out.set(vm.name, last.value);
  }
  return out;
}
