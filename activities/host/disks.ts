// Disk layers. A VM never writes its base image: it runs on a qcow2 overlay in the checkpoint store.
// A checkpoint freezes the current top layer (blockdev-snapshot-sync puts a new overlay on top while
// the VM is paused) and a restore starts a fresh overlay over the frozen layer, so a checkpoint's disk
// is never modified and the same checkpoint can be restored any number of times.
import { execFile } from 'node:child_process';
import { chmod } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import { mkdirDurable, writeFileAtomic } from '../../node/fsutil';
import { storeLayout, type DiskChainRecord } from '../../common/store-layout';

const run = promisify(execFile);

interface QemuImgInfo {
  filename: string;
  format: string;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
}

async function imageInfo(path: string): Promise<QemuImgInfo> {
  // -U: the image may be open in a running QEMU (read-only inspection is safe).
  const { stdout } = await run('qemu-img', ['info', '-U', '--output=json', path]);
  return JSON.parse(stdout) as QemuImgInfo;
}

/** Creates `path` as a qcow2 overlay over `backing` (idempotent when it already is exactly that). */
export async function createOverlay(path: string, backing: string, backingFormat: 'qcow2' | 'raw'): Promise<void> {
  if (existsSync(path)) {
    const info = await imageInfo(path);
    const current = info['full-backing-filename'] ?? info['backing-filename'];
    if (info.format === 'qcow2' && current === backing) return;
    throw new Error(`${path} exists but is not an overlay of ${backing} (backing: ${current ?? 'none'})`);
  }
  if (!existsSync(backing)) throw new Error(`disk image ${backing} does not exist`);
  await mkdirDurable(dirname(path));
  try {
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', backingFormat, '-b', backing, path]);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    throw new Error(`qemu-img could not create ${path}: ${stderr || (err as Error).message}`);
  }
  await chmod(path, 0o600);
}

/** Records the chain the VM's disk now runs on (the garbage collector never removes those layers). */
export async function writeChainRecord(store: string, record: DiskChainRecord & { cluster: string }): Promise<void> {
  const path = storeLayout.diskChain(store, record.cluster, record.vm, record.disk);
  await mkdirDurable(dirname(path));
  const { cluster: _cluster, ...chain } = record;
  await writeFileAtomic(path, JSON.stringify(chain, null, 2) + '\n');
}
