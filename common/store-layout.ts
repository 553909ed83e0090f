// Where things live in the checkpoint store (shared storage, same path on every host):
//
//   <store>/<cluster>/<checkpoint-id>/manifest.json   the commit record; without it the checkpoint does not exist
//   <store>/<cluster>/<checkpoint-id>/<vm>.state      each VM's saved RAM + device state (QEMU migration stream)
//   <store>/<cluster>/_disks/<vm>/<disk>/<label>.qcow2  disk layers: frozen ones belong to checkpoints,
//                                                      the top one of each chain is the running VM's
//   <store>/<cluster>/_disks/<vm>/<disk>/chain.json   the running VM's current chain (top layer first)
//   <store>/<cluster>/_failed/<checkpoint-id>.json    why a checkpoint failed (it left no other trace)
//   <store>/<cluster>/<checkpoint-id>/verified.json   when every state file was last read back and matched
//   <store>/<cluster>/_retention/<time>.json          what retention deleted, kept and merged, and why
//   <store>/<cluster>/_recoveries/<time>.json         every automatic recovery: what died, what came back where
//
// Checkpoint ids start with a letter or digit, so they never collide with the '_' folders.
// Pure path arithmetic (no node:path), so workflows may use it too: the store is an absolute, normalised
// path (names.ts: no '.', '..' or '//') and every other part is a validated name, so joining with '/' is
// all path.join would do here.

/** `store` + parts, separated by single slashes (a trailing slash of the store is dropped). */
function join(store: string, ...parts: string[]): string {
  return [store.replace(/\/+$/, ''), ...parts].join('/');
}

/** A state file's name inside its checkpoint folder (what manifests record). */
function stateFileName(vm: string): string {
  return `${vm}.state`;
}

export const storeLayout = {
  clusterDir: (store: string, cluster: string) => join(store, cluster),
  checkpointDir: (store: string, cluster: string, id: string) => join(store, cluster, id),
  manifest: (store: string, cluster: string, id: string) => join(store, cluster, id, 'manifest.json'),
  stateFile: (store: string, cluster: string, id: string, vm: string) => join(store, cluster, id, stateFileName(vm)),
  /** The store barrier's marks of the runs using this checkpoint folder (activities/host/store-barrier.ts). */
  barrierDir: (store: string, cluster: string, id: string) => join(store, cluster, id, '.barrier'),
  diskDir: (store: string, cluster: string, vm: string, disk: string) => join(store, cluster, '_disks', vm, disk),
  diskLayer: (store: string, cluster: string, vm: string, disk: string, label: string) =>
    join(store, cluster, '_disks', vm, disk, `${label}.qcow2`),
  diskChain: (store: string, cluster: string, vm: string, disk: string) => join(store, cluster, '_disks', vm, disk, 'chain.json'),
  disksDir: (store: string, cluster: string) => join(store, cluster, '_disks'),
  resumeRecord: (store: string, cluster: string, id: string) => join(store, cluster, id, 'resume.json'),
  failedDir: (store: string, cluster: string) => join(store, cluster, '_failed'),
  failedRecord: (store: string, cluster: string, id: string) => join(store, cluster, '_failed', `${id}.json`),
  verifiedRecord: (store: string, cluster: string, id: string) => join(store, cluster, id, 'verified.json'),
  retentionDir: (store: string, cluster: string) => join(store, cluster, '_retention'),
  recoveriesDir: (store: string, cluster: string) => join(store, cluster, '_recoveries'),
  stateFileName,
};

/**
 * The label of the disk layer a checkpoint puts on top when it freezes a disk: after-<id>+<run id>. '+' is
 * not in checkpoint ids, so the id is recovered unambiguously (checkpointIdOfLayer); older layers are
 * named after-<id>.
 */
export function checkpointLayerLabel(checkpointId: string, runId: string): string {
  return `after-${checkpointId}+${runId}`;
}

/** The checkpoint id a layer file name (<label>.qcow2) was made for, if it is a checkpoint's top layer. */
export function checkpointIdOfLayer(fileName: string): string | undefined {
  const m = /^after-(.+?)(?:\+[A-Za-z0-9-]+)?\.qcow2$/.exec(fileName);
  return m?.[1];
}

/** The chain a running VM's disk currently uses (written by its host at launch, freeze and restore). */
export interface DiskChainRecord {
  vm: string;
  disk: string;
  active: string;
  backing: string[];
}
