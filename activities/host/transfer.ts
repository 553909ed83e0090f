// Moving VM state between QEMU and the store without a shell. QEMU 7.2 has no file: migration URI and
// exec: would run a shell, so for a save QEMU migrates to a unix socket we listen on, and we write the
// stream to the file — hashing it on the way, so the checksum costs no second read. A restore is the
// mirror image: QEMU listens (migrate-incoming unix:...), we connect and stream the file into it.
import { createHash } from 'node:crypto';
import { createReadStream, rmSync } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface TransferResult {
  size: number;
  sha256: string;
}

export interface TransferOptions {
  /** Called at most every `progressEveryMs` with the bytes moved so far. */
  onProgress?: (bytes: number) => void;
  progressEveryMs?: number;
  signal?: AbortSignal;
}

const BATCH_BYTES = 4 << 20;

/** Counts and hashes what flows by, and reports progress now and then. */
class ChunkCounter {
  private readonly hash = createHash('sha256');
  bytes = 0;
  private lastReport = 0;

  constructor(private readonly options: TransferOptions) {}

  add(chunk: Buffer): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    const now = Date.now();
    if (this.options.onProgress && now - this.lastReport >= (this.options.progressEveryMs ?? 1000)) {
      this.lastReport = now;
      this.options.onProgress(this.bytes);
    }
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

/**
 * Listens on `socketPath` for exactly one connection (from QEMU's migrate) and writes everything it
 * sends to `file` (created exclusively, mode 0600), fsyncs it, and returns its size and sha256.
 * Call `start()` before issuing `migrate`, then await `done`.
 */
export class StateReceiver {
  private server: Server | undefined;
  private socket: Socket | undefined;
  readonly done: Promise<TransferResult>;
  private resolveDone!: (r: TransferResult) => void;
  private rejectDone!: (e: unknown) => void;

  constructor(
    private readonly socketPath: string,
    private readonly file: string,
    private readonly options: TransferOptions = {},
  ) {
    this.done = new Promise((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    this.done.catch(() => undefined);
  }

  async start(): Promise<void> {
    rmSync(this.socketPath, { force: true });
    const handle = await open(this.file, 'wx', 0o600);
    const server = createServer({ pauseOnConnect: true });
    this.server = server;
    let accepted = false;
    server.on('connection', (socket: Socket) => {
      if (accepted) {
        socket.destroy();
        return;
      }
      accepted = true;
      this.socket = socket;
      server.close();
      void this.receive(socket, handle);
    });
    this.options.signal?.addEventListener('abort', () => this.abort(new Error('transfer cancelled')), { once: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, () => resolve());
    });
    server.on('error', (err) => this.abort(err));
  }

  /** Fails the transfer (e.g. QEMU reported the migration failed before connecting). */
  abort(err: unknown): void {
    this.server?.close();
    this.socket?.destroy();
    rmSync(this.socketPath, { force: true });
    this.rejectDone(err);
  }

  private async receive(socket: Socket, handle: FileHandle): Promise<void> {
    const counter = new ChunkCounter(this.options);
    try {
      // Batches of up to 4 MiB, with one write in flight while the next batch is read.
      let batch: Buffer[] = [];
      let batchBytes = 0;
      let inFlight: Promise<unknown> = Promise.resolve();
      for await (const chunk of socket) {
        const buf = chunk as Buffer;
        counter.add(buf);
        batch.push(buf);
        batchBytes += buf.length;
        if (batchBytes >= BATCH_BYTES) {
          await inFlight;
          inFlight = handle.writev(batch);
          // Handled when awaited above or below; until then it must not count as unhandled (ENOSPC!).
          inFlight.catch(() => undefined);
          batch = [];
          batchBytes = 0;
        }
      }
      await inFlight;
      if (batch.length) await handle.writev(batch);
      await handle.sync();
      await handle.close();
      rmSync(this.socketPath, { force: true });
      this.resolveDone({ size: counter.bytes, sha256: counter.digest() });
    } catch (err) {
      socket.destroy();
      await handle.close().catch(() => undefined);
      rmSync(this.socketPath, { force: true });
      this.rejectDone(err);
    }
  }
}

/**
 * Streams `file` into the unix socket QEMU listens on after `migrate-incoming`, hashing it on the way.
 * Retries the connection for `connectWindowMs` (QEMU opens the socket asynchronously).
 */
export async function sendState(socketPath: string, file: string, options: TransferOptions & { connectWindowMs?: number } = {}): Promise<TransferResult> {
  const deadline = Date.now() + (options.connectWindowMs ?? 10_000);
  let socket: Socket;
  for (;;) {
    try {
      socket = await new Promise<Socket>((resolve, reject) => {
        const s = connect(socketPath);
        s.once('connect', () => resolve(s));
        s.once('error', reject);
      });
      break;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`QEMU is not listening on ${socketPath}: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const counter = new ChunkCounter(options);
  const input = createReadStream(file, { highWaterMark: 1 << 20 });
  const abort = () => {
    input.destroy(new Error('transfer cancelled'));
    socket.destroy();
  };
  options.signal?.addEventListener('abort', abort, { once: true });
  try {
    for await (const chunk of input) {
      const buf = chunk as Buffer;
      counter.add(buf);
      if (!socket.write(buf)) {
        await new Promise<void>((resolve, reject) => {
          const onDrain = () => {
            socket.off('error', onError);
            resolve();
          };
          const onError = (err: Error) => {
            socket.off('drain', onDrain);
            reject(err);
          };
          socket.once('drain', onDrain);
          socket.once('error', onError);
        });
      }
    }
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.end(() => resolve());
    });
  } finally {
    options.signal?.removeEventListener('abort', abort);
  }
  return { size: counter.bytes, sha256: counter.digest() };
}

export async function removeQuietly(path: string): Promise<void> {
  await rm(path, { force: true });
}
