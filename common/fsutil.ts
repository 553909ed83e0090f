// Durable file writes: temp file in the same folder, fsync, rename, fsync the folder. After a crash the
// destination holds either the old content or the new, never a mix.
import { closeSync, fsyncSync, openSync, renameSync, writeFileSync, rmSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
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
 * Durable write for the checkpoint store. The temp file has a fixed name, so a write retried after a crash
 * (the controller died between writing it and renaming it) replaces the leftover instead of adding another.
 * Callers never write the same path concurrently.
 */
export async function writeFileAtomic(path: string, data: string | Buffer, mode = 0o600): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.tmp`);
  const handle = await open(tmp, 'w', mode);
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
}
