// sha256 on another thread, over memory shared with it. Saving and loading VM state is CPU-bound on small
// hosts (QEMU's migration threads, our socket and file I/O, hashing and the kernel's writeback compete),
// so the bytes are neither copied nor handed over: a transfer reads or writes its stream through a ring of
// slots in a page-aligned shared memory (aligned, so the file can be written with O_DIRECT), and this
// thread hashes each slot where it lies. OpenSSL uses the CPU's SHA extensions: ~1.5–1.9 GB/s per core.
import { open } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';

/** Bytes per slot: a multiple of the 4 KiB that O_DIRECT needs, big enough that per-slot costs vanish. */
export const SLOT_BYTES = 4 << 20;
/** Slots per ring: one filling, the others being written and hashed. */
export const SLOTS = 4;
const WASM_PAGE = 64 << 10;
/** Idle lanes kept for the next transfer (each holds SLOTS × SLOT_BYTES of memory and a thread). */
const MAX_IDLE = 4;

const SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
let memory;
let hash;
parentPort.on('message', (m) => {
  if (m.begin) {
    memory = m.begin;
    hash = createHash('sha256');
  } else if (m.digest) {
    parentPort.postMessage({ digest: hash.digest('hex') });
    hash = undefined;
  } else {
    hash.update(new Uint8Array(memory, m.offset, m.length));
    parentPort.postMessage({ hashed: m.length });
  }
});
`;

const idle: HashLane[] = [];

/** WebAssembly.Memory (tsconfig's lib has no WebAssembly types): its memory is page-aligned, a Buffer's is not. */
type SharedWasmMemory = new (descriptor: { initial: number; maximum: number; shared: true }) => { buffer: SharedArrayBuffer };
const WasmMemory = (globalThis as unknown as { WebAssembly: { Memory: SharedWasmMemory } }).WebAssembly.Memory;

/**
 * A ring of SLOTS aligned slots in memory shared with a hashing thread. `hash(slot, n)` hashes the first
 * n bytes of a slot, in the order called; the promise settles once the thread has read them.
 */
export class HashLane {
  readonly slots: Buffer[];
  private readonly memory: SharedArrayBuffer;
  private readonly worker: Worker;
  private waiting: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  private digestWaiter: { resolve: (hex: string) => void; reject: (e: unknown) => void } | undefined;
  private broken: Error | undefined;

  private constructor() {
    // Shared, so the hashing thread reads it in place; never detached, so the lane can be reused.
    const pages = (SLOTS * SLOT_BYTES) / WASM_PAGE;
    this.memory = new WasmMemory({ initial: pages, maximum: pages, shared: true }).buffer;
    this.slots = Array.from({ length: SLOTS }, (_, i) => Buffer.from(this.memory, i * SLOT_BYTES, SLOT_BYTES));
    this.worker = new Worker(SOURCE, { eval: true });
    this.worker.on('message', (m: { hashed?: number; digest?: string }) => {
      if (m.hashed !== undefined) this.waiting.shift()?.resolve();
      else if (m.digest !== undefined) this.digestWaiter?.resolve(m.digest);
    });
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('exit', () => this.fail(new Error('the hashing thread exited')));
  }

  /** A lane with a fresh hash (an idle one if there is). */
  static acquire(): HashLane {
    const lane = idle.pop() ?? new HashLane();
    lane.worker.ref(); // a transfer keeps the process alive; an idle lane does not (unref in digest)
    lane.worker.postMessage({ begin: lane.memory });
    return lane;
  }

  hash(slot: number, length: number): Promise<void> {
    if (this.broken) return Promise.reject(this.broken);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.worker.postMessage({ offset: slot * SLOT_BYTES, length });
    });
  }

  /** The hex digest of everything hashed since acquire(); the lane goes back to the pool. */
  digest(): Promise<string> {
    if (this.broken) return Promise.reject(this.broken);
    return new Promise<string>((resolve, reject) => {
      this.digestWaiter = { resolve, reject };
      this.worker.postMessage({ digest: true });
    }).then((hex) => {
      this.digestWaiter = undefined;
      this.worker.unref();
      if (idle.length < MAX_IDLE) idle.push(this);
      else void this.worker.terminate();
      return hex;
    });
  }

  /** Gives up (after an error): the thread ends, never reused with a half-fed hash. */
  discard(): void {
    this.fail(new Error('transfer abandoned'));
    void this.worker.terminate();
  }

  private fail(err: Error): void {
    this.broken ??= err;
    for (const w of this.waiting.splice(0)) w.reject(err);
    this.digestWaiter?.reject(err);
    const i = idle.indexOf(this);
    if (i >= 0) idle.splice(i, 1);
  }
}

/** sha256 of a file, read slot by slot (the next read overlapping the hashing of the previous slot). */
export async function sha256File(path: string, onProgress?: (bytes: number) => void): Promise<string> {
  const lane = HashLane.acquire();
  const handle = await open(path, 'r');
  const busy: Array<Promise<void> | undefined> = [];
  let bytes = 0;
  let lastReport = 0;
  try {
    for (let slot = 0; ; slot = (slot + 1) % SLOTS) {
      await busy[slot];
      const { bytesRead } = await handle.read(lane.slots[slot] as Buffer, 0, SLOT_BYTES, null);
      if (bytesRead === 0) break;
      busy[slot] = lane.hash(slot, bytesRead);
      busy[slot]?.catch(() => undefined);
      bytes += bytesRead;
      if (onProgress && Date.now() - lastReport > 1000) {
        lastReport = Date.now();
        onProgress(bytes);
      }
    }
    await Promise.all(busy);
    return await lane.digest();
  } catch (err) {
    lane.discard();
    throw err;
  } finally {
    await handle.close();
  }
}
