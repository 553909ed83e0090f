// Reading where a token ring stood at a checkpoint and what it printed since a restore — shared by the
// tests' ring checks and the demo.
import type { Manifest } from '../common/manifest';
import { readConsole, ringTokens } from './console';

const RESTORE_MARKER = /^=== vccr: restoring from checkpoint (\S+) .*===$/gm;

/** Text a VM printed since its most recent restore from `checkpointId`. */
export function sinceLastRestore(path: string, checkpointId: string): string {
  const text = readConsole(path);
  let start = -1;
  for (const m of text.matchAll(RESTORE_MARKER)) if (m[1] === checkpointId) start = (m.index ?? 0) + m[0].length;
  if (start < 0) throw new Error(`no restore marker for ${checkpointId} in ${path}`);
  return text.slice(start);
}

/** Last token each node had received when it was paused, read from its console up to the recorded offset. */
export function tokensAtCheckpoint(manifest: Manifest, only?: string[]): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const vm of manifest.vms.filter((v) => !only || only.includes(v.name))) {
    if (!vm.console) throw new Error(`the manifest does not record ${vm.name}'s console`);
    const last = ringTokens(readConsole(vm.console.path, 0, vm.console.offsetAtPause)).at(-1);
    if (!last) throw new Error(`${vm.name} had received no token before the checkpoint`);
    out.set(vm.name, last.value);
  }
  return out;
}
