// Keeping disk chains short (pure planning; the work is done by activities/host/compact.ts on running VMs
// and activities/controller/chains.ts on files nobody has open).
//
// Every checkpoint freezes each disk's top layer and puts a new one over it, so without merging a disk
// grows one layer per checkpoint. A layer must stay only if something needs *its own view* of the disk:
// the top of a chain (a running VM writes to it), the bottom (the base image, never written), and the
// frozen layer of every retained checkpoint. Every other layer is merged away: its data is copied into
// the nearest layer above it that stays — only clusters that layer does not have yet, so what that layer
// (and everything above it) shows the guest does not change — and then that layer backs directly onto the
// nearest layer below that stays. QEMU's block-stream does exactly this on a running VM; qemu-img's safe
// rebase does it to a file. Both change the backing link only once the copy is complete, so an
// interruption leaves every layer valid.
//
// The qcow2 headers are the truth about a chain: a checkpoint's manifest (never modified) records the
// chain as it was committed, and merging only ever removes layers from a chain, so the chain the headers
// show must be a subsequence of the recorded one with the same top and bottom (validation checks this).

export interface MergeStep {
  /** The layer that takes the data (it stays; its guest view is unchanged). */
  into: string;
  /** The layer it backs onto afterwards (it stays). */
  base: string;
  /** Layers between them, top first: no longer part of this chain afterwards. */
  drops: string[];
}

/**
 * The merges that leave only the layers that must stay in `chain` (top first, base last): the top, the
 * base, and those `mustKeep` names. One step per run of droppable layers.
 */
export function planMerges(chain: string[], mustKeep: (layer: string) => boolean): MergeStep[] {
  const kept = chain.map((layer, i) => i === 0 || i === chain.length - 1 || mustKeep(layer));
  const steps: MergeStep[] = [];
  for (let i = 0; i < chain.length - 1; i++) {
    if (!kept[i]) continue;
    let j = i + 1;
    while (j < chain.length && !kept[j]) j++;
    if (j > i + 1 && j < chain.length) {
      steps.push({ into: chain[i] as string, base: chain[j] as string, drops: chain.slice(i + 1, j) });
    }
  }
  return steps;
}

/**
 * Whether `current` (what the headers say now) can be what `recorded` became through merges: the same top
 * and bottom, and nothing that was not in `recorded`, in the same order.
 */
export function isMergedFrom(current: string[], recorded: string[]): boolean {
  if (current.length === 0 || current[0] !== recorded[0] || current.at(-1) !== recorded.at(-1)) return false;
  let j = 0;
  for (const layer of current) {
    while (j < recorded.length && recorded[j] !== layer) j++;
    if (j === recorded.length) return false;
    j++;
  }
  return true;
}
