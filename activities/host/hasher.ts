// sha256 on another thread. Saving and loading VM state is CPU-bound on small hosts (QEMU's migration
// thread, our socket and file I/O, and hashing all compete); hashing on the event loop cost about a
// third of the save throughput here. Buffers are handed over (transferred, not copied) once written.
import { open } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';

const SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
let hash = createHash('sha256');
parentPort.on('message', (m) => {
  if (m === 'digest') {
    parentPort.postMessage({ digest: hash.digest('hex') });
    hash = createHash('sha256');
  } else {
    hash.update(new Uint8Array(m));
    parentPort.postMessage({ hashed: m.byteLength });
  }
});
`;

/** Idle hashing threads, reused across transfers (starting one costs tens of ms). */
const idle: Worker[] = [];

/** Most bytes handed over but not hashed yet, before ready() makes the producer wait. */
const MAX_PENDING = 64 << 20;

export class OffThreadSha256 {
  private readonly worker: Worker;
  private finished = false;
  private pending = 0;
  private waiters: Array<() => void> = [];
  private digestWaiter: ((hex: string) => void) | undefined;

  constructor() {
    this.worker = idle.pop() ?? new Worker(SOURCE, { eval: true });
    this.worker.unref();
    this.worker.removeAllListeners('message');
    this.worker.on('message', (m: { hashed?: number; digest?: string }) => {
      if (m.hashed !== undefined) {
        this.pending -= m.hashed;
        if (this.pending < MAX_PENDING) for (const w of this.waiters.splice(0)) w();
      } else if (m.digest !== undefined) {
        this.digestWaiter?.(m.digest);
      }
    });
  }

  /** Resolves when the hashing thread has caught up enough to take more. */
  async ready(): Promise<void> {
    if (this.pending < MAX_PENDING) return;
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /** Hands `buf` to the hashing thread; `buf` must not be used afterwards. */
  update(buf: Buffer): void {
    if (buf.length === 0) return;
    const owned = buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength;
    const ab = owned ? buf.buffer : buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
    if (!(ab instanceof ArrayBuffer)) throw new Error('cannot hash a SharedArrayBuffer');
    this.pending += ab.byteLength;
    this.worker.postMessage(ab, [ab]);
  }

  /** The hex digest of everything updated so far, in order; the thread goes back to the pool. */
  digest(): Promise<string> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        this.digestWaiter = undefined;
        reject(err);
      };
      this.digestWaiter = (hex) => {
        this.worker.off('error', onError);
        this.digestWaiter = undefined;
        this.finished = true;
        this.worker.removeAllListeners('message');
        idle.push(this.worker);
        resolve(hex);
      };
      this.worker.once('error', onError);
      this.worker.postMessage('digest');
    });
  }

  /** Gives up (after an error): the thread is discarded, never reused with a half-fed hash. */
  discard(): void {
    if (!this.finished) void this.worker.terminate();
    this.finished = true;
  }
}

/** sha256 of a file, read in 4 MiB blocks and hashed on another thread. */
export async function sha256File(path: string, onProgress?: (bytes: number) => void): Promise<string> {
  const hasher = new OffThreadSha256();
  const handle = await open(path, 'r');
  let bytes = 0;
  let lastReport = 0;
  try {
    for (;;) {
      const buf = Buffer.allocUnsafeSlow(4 << 20);
      const { bytesRead } = await handle.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      await hasher.ready();
      hasher.update(bytesRead === buf.length ? buf : Buffer.from(buf.buffer, 0, bytesRead));
      bytes += bytesRead;
      if (onProgress && Date.now() - lastReport > 1000) {
        lastReport = Date.now();
        onProgress(bytes);
      }
    }
    return await hasher.digest();
  } catch (err) {
    hasher.discard();
    throw err;
  } finally {
    await handle.close();
  }
}
