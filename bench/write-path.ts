// Profiling the save's write path (not a baseline): the same VMs are paused and migrated, all at once, into
// different sinks, so the cost of each stage shows: QEMU + socket alone (discard), the earlier designs
// (page cache writes and one final fsync without hashing; page cache + sha256 + fdatasync every 64 MiB),
// the product's StateReceiver (ring of aligned slots, O_DIRECT, sha256 on a shared thread), and the same
// with zstd compression (the opt-in stateCompression).
import { createHash } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { QmpClient } from '../activities/qmp';
import { StateReceiver } from '../activities/host/transfer';
import { configureMigration, MigrationWatch, UNLIMITED_BANDWIDTH } from '../activities/host/migration';
import type { DirectVm } from './direct-qmp';

export const SINKS = ['discard', 'no-hash', 'flush-as-you-go', 'product', 'zstd'] as const;
export type Sink = (typeof SINKS)[number];

const FLUSH_EVERY = 64 << 20;
const BATCH = 4 << 20;

/** A one-connection unix-socket listener that writes (or drops) what arrives; resolves with the byte count. */
async function customSink(socketPath: string, file: string, mode: 'discard' | 'no-hash' | 'flush-as-you-go'): Promise<{ ready: Promise<void>; done: Promise<number> }> {
  await rm(socketPath, { force: true });
  const handle = mode === 'discard' ? undefined : await open(file, 'wx', 0o600);
  let resolveDone!: (n: number) => void;
  let rejectDone!: (e: unknown) => void;
  const done = new Promise<number>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  const server = createServer((socket: Socket) => {
    server.close();
    void (async () => {
      const hash = mode === 'flush-as-you-go' ? createHash('sha256') : undefined;
      let bytes = 0;
      let sinceFlush = 0;
      let batch: Buffer[] = [];
      let batchBytes = 0;
      let write: Promise<unknown> = Promise.resolve();
      let flush: Promise<unknown> = Promise.resolve();
      try {
        for await (const chunk of socket) {
          const buf = chunk as Buffer;
          bytes += buf.length;
          if (!handle) continue;
          hash?.update(buf);
          batch.push(buf);
          batchBytes += buf.length;
          if (batchBytes >= BATCH) {
            await write;
            write = handle.writev(batch);
            sinceFlush += batchBytes;
            batch = [];
            batchBytes = 0;
            if (mode === 'flush-as-you-go' && sinceFlush >= FLUSH_EVERY) {
              // One flush in flight at a time, overlapping with receiving the next bytes.
              await flush;
              const w = write;
              flush = w.then(() => handle.datasync());
              sinceFlush = 0;
            }
          }
        }
        if (handle) {
          await write;
          if (batch.length) await handle.writev(batch);
          await flush;
          await handle.sync();
          await handle.close();
        }
        hash?.digest('hex');
        resolveDone(bytes);
      } catch (err) {
        await handle?.close().catch(() => undefined);
        rejectDone(err);
      }
    })();
  });
  const ready = new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(socketPath, () => res());
  });
  return { ready, done };
}

/**
 * Pauses every VM (guard monitors), migrates each into `sink` under `dir`, resumes them all. Returns bytes and
 * the time from the first `migrate` to the last byte durable (or dropped).
 */
export async function saveThrough(vms: DirectVm[], dir: string, sink: Sink): Promise<{ sink: Sink; bytes: number; fileBytes: number; ms: number }> {
  const qmps = await Promise.all(vms.map((vm) => QmpClient.connect(vm.guardSocket, { retryWindowMs: 2000, name: vm.name })));
  try {
    await Promise.all(
      qmps.map(async (q) => {
        await configureMigration(q, 'write-path', { events: true, backgroundSnapshot: false, maxBandwidth: UNLIMITED_BANDWIDTH });
      }),
    );
    await Promise.all(qmps.map((q) => q.command('stop')));
    const t0 = Date.now();
    const sizes = await Promise.all(
      qmps.map(async (q, i) => {
        const vm = vms[i] as DirectVm;
        const socket = join(dir, `${vm.name}.wp.sock`);
        const file = join(dir, `${vm.name}.wp.${sink}`);
        await rm(file, { force: true });
        let done: Promise<{ bytes: number; fileBytes: number }>;
        if (sink === 'product' || sink === 'zstd') {
          const r = new StateReceiver(socket, file, sink === 'zstd' ? { codec: 'zstd' } : {});
          await r.start();
          done = r.done.then((t) => ({ bytes: t.rawSize ?? t.size, fileBytes: t.size }));
        } else {
          const s = await customSink(socket, file, sink);
          await s.ready;
          done = s.done.then((bytes) => ({ bytes, fileBytes: sink === 'discard' ? 0 : bytes }));
        }
        const watch = new MigrationWatch(q, vm.name);
        try {
          await q.command('migrate', { uri: `unix:${socket}` });
          const [sizes, end] = await Promise.all([done, watch.end({ timeoutMs: 3600_000 })]);
          if (end.status !== 'completed') throw new Error(`migration of ${vm.name} ended ${end.status}`);
          return { ...sizes, file };
        } finally {
          watch.close();
        }
      }),
    );
    const ms = Date.now() - t0;
    for (const s of sizes) await rm(s.file, { force: true });
    return { sink, bytes: sizes.reduce((a, b) => a + b.bytes, 0), fileBytes: sizes.reduce((a, b) => a + b.fileBytes, 0), ms };
  } finally {
    await Promise.allSettled(qmps.map((q) => q.command('cont')));
    await Promise.allSettled(qmps.map((q) => q.close()));
  }
}
