// Preflight of the checkpoint store, as one participant (a host or the controller) sees it: the path
// exists and is a folder, which file system it is on, it can be written, and it has room for the
// cluster's RAM. Then the marker protocol that proves every participant sees the SAME store: each
// writes a marker file into <store>/.vccr-doctor/<token>/, then each lists which markers it can see.
import { mkdir, readdir, readFile, rm, rmdir, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { fail, ok, type Check } from '../../common/doctor';
import { writeFileAtomic } from '../../node/fsutil';

/** The doctor's scratch folder in the store (cluster names cannot start with '.', so it never collides). */
export const DOCTOR_DIR = '.vccr-doctor';

export interface MountInfo {
  mountPoint: string;
  fsType: string;
  source: string;
}

/** The mount a path lives on, from /proc/self/mountinfo (longest mount point that contains it). */
export async function mountOf(path: string): Promise<MountInfo | undefined> {
  let text: string;
  try {
    text = await readFile('/proc/self/mountinfo', 'utf8');
  } catch {
    return undefined;
  }
  let best: MountInfo | undefined;
  for (const line of text.split('\n')) {
    // id parent major:minor root mountpoint options [optional fields...] - fstype source superoptions
    const [left, right] = line.split(' - ');
    const mountPoint = left?.split(' ')[4]?.replace(/\\040/g, ' ');
    const [fsType, source] = right?.split(' ') ?? [];
    if (!mountPoint || !fsType) continue;
    const contains = mountPoint === '/' || path === mountPoint || path.startsWith(`${mountPoint}/`);
    if (contains && (!best || mountPoint.length >= best.mountPoint.length)) best = { mountPoint, fsType, source: source ?? '?' };
  }
  return best;
}

export function formatSize(bytes: number): string {
  const mib = bytes / 2 ** 20;
  return mib >= 1024 ? `${(mib / 1024).toFixed(1)} GiB` : `${Math.round(mib)} MiB`;
}

const errCode = (err: unknown) => (err as NodeJS.ErrnoException).code ?? (err as Error).message;

/**
 * Checks the store at `store` and writes this participant's marker (the write test), returning the
 * `store` check. `needBytes` is the RAM of the whole cluster: every VM's state goes to this one store.
 */
export async function checkStore(store: string, needBytes: number, marker: { token: string; name: string }): Promise<{ check: Check; markerWritten: boolean }> {
  const mountFix = `mount the shared checkpoint store at ${store} on every host and on the controller (the same path everywhere), e.g. in /etc/fstab`;
  try {
    const st = await stat(store);
    if (!st.isDirectory()) return { check: fail('store', `${store} is not a folder`, mountFix), markerWritten: false };
  } catch (err) {
    return { check: fail('store', `${store} does not exist (${errCode(err)})`, mountFix), markerWritten: false };
  }
  const mount = await mountOf(store);
  const where = mount ? `${mount.fsType} ${mount.source} mounted at ${mount.mountPoint}` : 'unknown file system';
  try {
    const dir = join(store, DOCTOR_DIR, marker.token);
    // One level at a time: a recursive mkdir reports ENOENT, not EROFS, on a read-only file system.
    for (const d of [join(store, DOCTOR_DIR), dir]) {
      await mkdir(d, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
    }
    await writeFileAtomic(join(dir, marker.name), JSON.stringify({ marker: marker.name, token: marker.token, writtenAt: Date.now() }));
  } catch (err) {
    return {
      check: fail('store', `${store} (${where}) cannot be written: ${errCode(err)}`, `make ${store} writable by root on this machine (not read-only, no root squashing on NFS)`),
      markerWritten: false,
    };
  }
  const fs = await statfs(store);
  const free = Number(fs.bavail) * Number(fs.bsize);
  const detail = `${store}: ${where}, ${formatSize(free)} free`;
  if (free < needBytes) {
    return { check: fail('store', `${detail}, the cluster's RAM needs ${formatSize(needBytes)}`, `free space on ${store} or give the cluster a larger store`), markerWritten: true };
  }
  return { check: ok('store', needBytes ? `${detail} (the cluster's RAM: ${formatSize(needBytes)})` : detail), markerWritten: true };
}

/** The marker files this participant can see in the doctor's folder of the store. */
export async function readMarkers(store: string, token: string): Promise<string[]> {
  try {
    return (await readdir(join(store, DOCTOR_DIR, token))).filter((n) => !n.startsWith('.')).sort();
  } catch {
    return [];
  }
}

/** Removes this participant's marker, and the doctor's folders once they are empty. */
export async function removeMarker(store: string, token: string, name: string): Promise<void> {
  const dir = join(store, DOCTOR_DIR, token);
  await rm(join(dir, name), { force: true });
  for (const d of [dir, join(store, DOCTOR_DIR)]) await rmdir(d).catch(() => undefined);
}
