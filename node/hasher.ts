// sha256 on other threads, over memory shared with them. Saving and loading VM state is CPU-bound on small
// hosts (QEMU's migration threads, our socket and file I/O, hashing and the kernel compete), so the bytes
// are neither copied nor handed over: a transfer moves its stream through a lane, a ring of slots in
// page-aligned shared memory (aligned, so the file can be written with O_DIRECT), and a hashing thread
// hashes each slot where it lies. OpenSSL uses the CPU's SHA extensions here: 1.3–1.9 GB/s per core.
// The threads are few (one per core, at most 4) and shared by every lane: a host restoring a hundred small
// VMs must not start a hundred threads (tens of ms each).
import { availableParallelism } from 'node:os';
import { open } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';

/** Bytes per slot: a multiple of the 4 KiB that O_DIRECT needs, big enough that per-slot costs vanish. */
export const SLOT_BYTES = 4 << 20;
/** Slots per ring: one filling, the others being written and hashed. */
export const SLOTS = 4;
const WASM_PAGE = 64 << 10;
/** Idle rings kept for the next transfers (each SLOTS × SLOT_BYTES). */
const MAX_IDLE_RINGS = 4;
const MAX_THREADS = Math.max(1, Math.min(4, availableParallelism()));

const SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const streams = new Map();
parentPort.on('message', (m) => {
  if (m.begin !== undefined) {
    streams.set(m.begin, { memory: m.memory, hash: createHash('sha256') });
  } else if (m.drop !== undefined) {
    streams.delete(m.drop);
  } else if (m.digest !== undefined) {
    const s = streams.get(m.digest);
    streams.delete(m.digest);
    if (s) parentPort.postMessage({ id: m.digest, digest: s.hash.digest('hex') });
  } else {
    const s = streams.get(m.id);
    if (!s) return; // dropped: nobody waits for it
    s.hash.update(new Uint8Array(s.memory, m.offset, m.length));
    parentPort.postMessage({ id: m.id, hashed: true });
  }
});
`;

/** WebAssembly.Memory (tsconfig's lib has no WebAssembly types): its memory is page-aligned, a Buffer's is not. */
type SharedWasmMemory = new (descriptor: { initial: number; maximum: number; shared: true }) => { buffer: SharedArrayBuffer };
const WasmMemory = (globalThis as unknown as { WebAssembly: { Memory: SharedWasmMemory } }).WebAssembly.Memory;

type Reply = { id: number; hashed?: true; digest?: string };

/** One hashing thread and the lanes it serves. It keeps the process alive only while it serves one. */
class HashThread {
  readonly worker = new Worker(SOURCE, { eval: true });
  readonly lanes = new Map<number, HashLane>();

  constructor(private readonly onDeath: (t: HashThread) => void) {
    this.worker.on('message', (m: Reply) => this.lanes.get(m.id)?.reply(m));
    const die = (err: Error) => {
      this.onDeath(this);
      for (const lane of this.lanes.values()) lane.fail(err);
      this.lanes.clear();
    };
    this.worker.on('error', die);
    this.worker.on('exit', () => die(new Error('a hashing thread exited')));
    this.worker.unref();
  }

  attach(id: number, lane: HashLane): void {
    if (this.lanes.size === 0) this.worker.ref();
    this.lanes.set(id, lane);
  }

  detach(id: number): void {
    if (this.lanes.delete(id) && this.lanes.size === 0) this.worker.unref();
  }
}

const threads: HashThread[] = [];
const idleRings: SharedArrayBuffer[] = [];
let nextId = 1;

function forget(thread: HashThread): void {
  const i = threads.indexOf(thread);
  if (i >= 0) threads.splice(i, 1);
}

/** The thread serving the fewest lanes (a new one while there are fewer than MAX_THREADS). */
function leastBusyThread(): HashThread {
  const free = threads.find((t) => t.lanes.size === 0);
  if (free) return free;
  if (threads.length < MAX_THREADS) {
    const t = new HashThread(forget);
    threads.push(t);
    return t;
  }
  return threads.reduce((a, b) => (b.lanes.size < a.lanes.size ? b : a));
}

/**
 * A ring of SLOTS aligned slots in memory shared with a hashing thread. `hash(slot, n)` hashes the first
 * n bytes of a slot, in the order called; the promise settles once the thread has read them.
 */
export class HashLane {
  readonly slots: Buffer[];
  private readonly id = nextId++;
  private readonly thread: HashThread;
  private waiting: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  private digestWaiter: { resolve: (hex: string) => void; reject: (e: unknown) => void } | undefined;
  private broken: unknown;

  private constructor(private readonly memory: SharedArrayBuffer) {
    this.slots = Array.from({ length: SLOTS }, (_, i) => Buffer.from(memory, i * SLOT_BYTES, SLOT_BYTES));
    this.thread = leastBusyThread();
    this.thread.attach(this.id, this);
    this.thread.worker.postMessage({ begin: this.id, memory });
  }

  /** A lane with a fresh hash (on an idle ring if there is one). */
  static acquire(): HashLane {
    const pages = (SLOTS * SLOT_BYTES) / WASM_PAGE;
    // Shared, so the hashing thread reads it in place; never detached, so a ring can be reused.
    return new HashLane(idleRings.pop() ?? new WasmMemory({ initial: pages, maximum: pages, shared: true }).buffer);
  }

  hash(slot: number, length: number): Promise<void> {
    if (this.broken !== undefined) return Promise.reject(this.broken);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.thread.worker.postMessage({ id: this.id, offset: slot * SLOT_BYTES, length });
    });
  }

  /** The hex digest of everything hashed since acquire(); the ring goes back to the pool. */
  digest(): Promise<string> {
    if (this.broken !== undefined) return Promise.reject(this.broken);
    return new Promise<string>((resolve, reject) => {
      this.digestWaiter = { resolve, reject };
      this.thread.worker.postMessage({ digest: this.id });
    }).then((hex) => {
      this.thread.detach(this.id);
      if (idleRings.length < MAX_IDLE_RINGS) idleRings.push(this.memory);
      return hex;
    });
  }

  /** Returns a lane that hashed nothing (a compressed transfer used only its ring). */
  release(): void {
    this.thread.worker.postMessage({ drop: this.id });
    this.thread.detach(this.id);
    if (idleRings.length < MAX_IDLE_RINGS) idleRings.push(this.memory);
  }

  /** Gives up (after an error): the hash is dropped, and the ring too (the thread may still read it). */
  discard(): void {
    this.fail(new Error('transfer abandoned'));
    this.thread.worker.postMessage({ drop: this.id });
    this.thread.detach(this.id);
  }

  /** A reply from the thread, for this lane. */
  reply(m: Reply): void {
    if (m.hashed) this.waiting.shift()?.resolve();
    else if (m.digest !== undefined) this.digestWaiter?.resolve(m.digest);
  }

  fail(err: unknown): void {
    this.broken ??= err;
    for (const w of this.waiting.splice(0)) w.reject(err);
    this.digestWaiter?.reject(err);
    this.digestWaiter = undefined;
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
