// Durable file writes: temp file in the same folder, fsync, rename, fsync the folder. After a crash the
// destination holds either the old content or the new, never a mix.
import { closeSync, existsSync, fsyncSync, openSync, renameSync, writeFileSync, rmSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, basename } from 'node:path';
import { randomBytes } from 'node:crypto';

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Atomic replace without fsync: enough where only a process crash matters (a host's lease files and VM
 * records: after a power loss the VMs they describe are gone too), and cheap enough for critical paths.
 */
export function replaceFileSync(path: string, data: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    writeFileSync(tmp, data, { mode: 0o600 });
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * Async variant for the checkpoint store. Each write has its own temp file (host, pid, random), so two
 * writes of one path that overlap — an activity retried while its first attempt still runs — never mix:
 * the file ends up as one of them, whole. A temp file left by a writer of this host that died is removed
 * after the next successful write of the same path.
 */
export async function writeFileAtomic(path: string, data: string | Buffer, mode = 0o600): Promise<void> {
  const tmp = join(dirname(path), `${tempPrefix(path)}${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await open(tmp, 'wx', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  fsyncDir(dirname(path));
  await removeDeadWritersTemps(path);
}

const HOST_TAG = hostname().replace(/[^A-Za-z0-9-]/g, '-');

function tempPrefix(path: string): string {
  return `.${basename(path)}.${HOST_TAG}.`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Temp files of `path` left by writers of this host that are gone (and the fixed-name one of older versions). */
async function removeDeadWritersTemps(path: string): Promise<void> {
  const prefix = tempPrefix(path);
  const legacy = `.${basename(path)}.tmp`;
  for (const name of await readdir(dirname(path)).catch(() => [] as string[])) {
    const pid = name.startsWith(prefix) && name.endsWith('.tmp') ? Number(name.slice(prefix.length).split('.')[0]) : Number.NaN;
    if (name === legacy || (Number.isInteger(pid) && pid !== process.pid && !alive(pid))) await rm(join(dirname(path), name), { force: true });
  }
}

/**
 * mkdir -p that survives a power loss: each folder it creates is made durable by fsyncing its parent
 * (a new directory entry is only durable once the folder holding it is synced).
 */
export async function mkdirDurable(path: string, mode = 0o700): Promise<void> {
  const missing: string[] = [];
  for (let dir = path; !existsSync(dir); dir = dirname(dir)) missing.unshift(dir);
  for (const dir of missing) {
    await mkdir(dir, { mode }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
    fsyncDir(dirname(dir));
  }
}
