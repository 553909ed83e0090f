// The janitor remembers every process and network namespace a test run creates, so that whatever a
// crashed or interrupted test leaves behind is removed by `sweep` at the end of the run (scripts/test.sh).
// Records are small files in $VCCR_JANITOR_DIR; without that variable nothing is recorded.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { identify, isAlive, terminate, type ProcessIdentity } from '../node/proc';

type Record =
  | { kind: 'process'; pid: number; startTime: string; what: string }
  | { kind: 'netns'; name: string }
  | { kind: 'path'; path: string }
  /** A host worker's state folder: every VM recorded under it (vm.json) is ended by the sweep. */
  | { kind: 'vm-state'; path: string }
  | { kind: 'mount'; path: string };

function dir(): string | undefined {
  const d = process.env.VCCR_JANITOR_DIR;
  if (d) mkdirSync(d, { recursive: true });
  return d;
}

function keyOf(r: Record): string {
  switch (r.kind) {
    case 'process':
      return `process-${r.pid}-${r.startTime}`;
    case 'netns':
      return `netns-${r.name}`;
    case 'path':
      return `path-${Buffer.from(r.path).toString('base64url')}`;
    case 'vm-state':
      return `vm-state-${Buffer.from(r.path).toString('base64url')}`;
    case 'mount':
      return `mount-${Buffer.from(r.path).toString('base64url')}`;
  }
}

function remember(r: Record): void {
  const d = dir();
  if (d) writeFileSync(join(d, keyOf(r)), JSON.stringify(r));
}

function forget(r: Record): void {
  const d = dir();
  if (d) rmSync(join(d, keyOf(r)), { force: true });
}

/** track/untrack of the records that name a path. */
function pathRecords(kind: 'path' | 'mount' | 'vm-state'): { track: (path: string) => void; untrack: (path: string) => void } {
  return { track: (path) => remember({ kind, path }), untrack: (path) => forget({ kind, path }) };
}

export const janitor = {
  trackProcess(pid: number, what: string): ProcessIdentity | undefined {
    const id = identify(pid);
    if (id) remember({ kind: 'process', pid, startTime: id.startTime, what });
    return id;
  },
  untrackProcess(id: ProcessIdentity): void {
    forget({ kind: 'process', pid: id.pid, startTime: id.startTime, what: '' });
  },
  trackNetns: (name: string): void => remember({ kind: 'netns', name }),
  untrackNetns: (name: string): void => forget({ kind: 'netns', name }),
  trackPath: pathRecords('path').track,
  untrackPath: pathRecords('path').untrack,
  trackMount: pathRecords('mount').track,
  untrackMount: pathRecords('mount').untrack,
  trackVmState: pathRecords('vm-state').track,
  untrackVmState: pathRecords('vm-state').untrack,
};

/** Removes everything still recorded under `janitorDir`; returns a description of each leftover. */
export async function sweep(janitorDir: string): Promise<string[]> {
  const leftovers: string[] = [];
  let names: string[];
  try {
    names = readdirSync(janitorDir);
  } catch {
    return leftovers;
  }
  const records = names.map((n) => JSON.parse(readFileSync(join(janitorDir, n), 'utf8')) as Record);
  // VMs and processes first (they may hold namespaces and files open), then namespaces, then paths.
  for (const r of records) {
    if (r.kind === 'vm-state') {
      for (const vm of await killRecordedVms(r.path)) leftovers.push(`VM ${vm}`);
    }
  }
  for (const r of records) {
    if (r.kind === 'process' && isAlive({ pid: r.pid, startTime: r.startTime })) {
      leftovers.push(`process ${r.pid} (${r.what})`);
      await terminate({ pid: r.pid, startTime: r.startTime }, 'SIGKILL', 2000);
    }
  }
  for (const r of records) {
    if (r.kind === 'netns' && spawnSync('ip', ['netns', 'pids', r.name]).status === 0) {
      leftovers.push(`network namespace ${r.name}`);
      spawnSync('ip', ['netns', 'del', r.name]);
    }
  }
  for (const r of records) {
    if (r.kind === 'mount' && spawnSync('mountpoint', ['-q', r.path]).status === 0) {
      leftovers.push(`mount ${r.path}`);
      spawnSync('umount', ['-l', r.path]);
    }
  }
  for (const r of records) {
    if (r.kind === 'path') {
      try {
        readdirSync(r.path);
        leftovers.push(`folder ${r.path}`);
      } catch {
        // already gone
      }
      rmSync(r.path, { recursive: true, force: true });
    }
  }
  rmSync(janitorDir, { recursive: true, force: true });
  return leftovers;
}

/** Ends every QEMU recorded in a host worker's state folder (<dir>/<cluster>/<vm>/vm.json); returns their names. */
export async function killRecordedVms(stateDir: string): Promise<string[]> {
  const killed: string[] = [];
  // The host's pause guard (a detached process that outlives host workers).
  try {
    const guard = JSON.parse(readFileSync(join(stateDir, 'pause-guard.pid'), 'utf8')) as { pid?: unknown; startTime?: unknown };
    if (typeof guard.pid === 'number' && typeof guard.startTime === 'string' && isAlive({ pid: guard.pid, startTime: guard.startTime })) {
      await terminate({ pid: guard.pid, startTime: guard.startTime }, 'SIGKILL', 2000);
    }
  } catch {
    // no guard
  }
  let clusters: string[];
  try {
    clusters = readdirSync(stateDir);
  } catch {
    return killed;
  }
  for (const cluster of clusters) {
    let vms: string[];
    try {
      vms = readdirSync(join(stateDir, cluster));
    } catch {
      continue;
    }
    for (const vm of vms) {
      try {
        const record = JSON.parse(readFileSync(join(stateDir, cluster, vm, 'vm.json'), 'utf8')) as { pid?: unknown; startTime?: unknown };
        if (typeof record.pid !== 'number' || typeof record.startTime !== 'string') continue;
        const id = { pid: record.pid, startTime: record.startTime };
        if (isAlive(id)) {
          await terminate(id, 'SIGKILL', 2000);
          killed.push(`${cluster}/${vm} (pid ${record.pid})`);
        }
      } catch {
        // no record, or not ours
      }
      await killLiveWriters(join(stateDir, cluster, vm, 'live'));
    }
  }
  return killed;
}

/** Detached live writers (activities/host/live-writer) still running in a VM's `live` folder. */
async function killLiveWriters(dir: string): Promise<void> {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.status.json'));
  } catch {
    return;
  }
  for (const f of files) {
    try {
      const status = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { pid?: unknown; startTime?: unknown };
      if (typeof status.pid !== 'number' || typeof status.startTime !== 'string') continue;
      const id = { pid: status.pid, startTime: status.startTime };
      if (isAlive(id)) await terminate(id, 'SIGKILL', 2000);
    } catch {
      // unreadable: not a writer we can identify
    }
  }
}
