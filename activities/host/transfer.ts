// Moving VM state between QEMU and the store without a shell. QEMU 7.2 has no file: migration URI and
// exec: would run a shell, so for a save QEMU migrates to a unix socket we listen on, and we write the
// stream to the file — hashing it on the way, so the checksum costs no second read. A restore is the
// mirror image: QEMU listens (migrate-incoming unix:...), we connect and stream the file into it.
// Both go through a HashLane's ring of aligned slots: filled from the socket (or the file), written to the
// file (or the socket) and hashed on another thread where they lie, with no further copy.
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { CompressedWriter, decompressedFrames, type StateCodec } from './codec';
import { HashLane, SLOTS, SLOT_BYTES } from '../../node/hasher';
import { StateFile } from './state-file';

export interface TransferResult {
  /** Bytes in the file. */
  size: number;
  sha256: string;
  /** Bytes of the migration stream, when the file is compressed. */
  rawSize?: number;
}

export interface TransferOptions {
  /** Called at most every `progressEveryMs` with the bytes moved so far. */
  onProgress?: (bytes: number) => void;
  progressEveryMs?: number;
  signal?: AbortSignal;
  /** The state file is (to be) compressed with this codec (see codec.ts); raw when absent. */
  codec?: StateCodec;
}


/** Counts what flows by and reports progress now and then. */
class ChunkCounter {
  bytes = 0;
  private lastReport = 0;

  constructor(private readonly options: TransferOptions) {}

  add(chunk: { length: number }): void {
    this.bytes += chunk.length;
    const now = Date.now();
    if (this.options.onProgress && now - this.lastReport >= (this.options.progressEveryMs ?? 1000)) {
      this.lastReport = now;
      this.options.onProgress(this.bytes);
    }
  }
}

/** Which slots of a ring are still being written and hashed; the first failure of any is kept. */
class SlotsInFlight {
  private readonly busy: Array<Promise<unknown> | undefined> = new Array(SLOTS);
  failure: unknown;

  /** Waits until `slot` may be reused (throws the first failure of any slot). */
  async free(slot: number): Promise<void> {
    const pending = this.busy[slot];
    if (pending) {
      await pending;
      this.busy[slot] = undefined;
    }
    if (this.failure !== undefined) throw this.failure;
  }

  add(slot: number, work: Promise<unknown>): void {
    work.catch((err: unknown) => {
      this.failure ??= err;
    });
    this.busy[slot] = work;
  }

  async all(): Promise<void> {
    await Promise.all(this.busy);
    if (this.failure !== undefined) throw this.failure;
  }
}

/**
 * Listens on `socketPath` for exactly one connection (from QEMU's migrate) and writes everything it
 * sends to `file` (created exclusively, mode 0600, O_DIRECT where possible), fsyncs it, and returns its
 * size and sha256. Call `start()` before issuing `migrate`, then await `done`.
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
    // A compressed file is written through the page cache: its frames are not block-aligned.
    const handle = await StateFile.create(this.file, { direct: !this.options.codec });
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

  private async receive(socket: Socket, file: StateFile): Promise<void> {
    const counter = new ChunkCounter(this.options);
    const lane = HashLane.acquire();
    const inFlight = new SlotsInFlight();
    const compressed = this.options.codec ? new CompressedWriter(file) : undefined;
    let slot = 0;
    let fill = 0;
    let position = 0;
    // A full slot is written and hashed (or compressed) while the next ones fill; the socket waits when
    // all are busy.
    const submit = () => {
      const buf = lane.slots[slot] as Buffer;
      inFlight.add(slot, compressed ? compressed.push(buf.subarray(0, fill)) : Promise.all([file.write(buf, fill, position), lane.hash(slot, fill)]));
      position += fill;
      fill = 0;
      slot = (slot + 1) % SLOTS;
    };
    try {
      for await (const chunk of socket) {
        const buf = chunk as Buffer;
        counter.add(buf);
        for (let off = 0; off < buf.length; ) {
          await inFlight.free(slot);
          const n = buf.copy(lane.slots[slot] as Buffer, fill, off);
          off += n;
          fill += n;
          if (fill === SLOT_BYTES) submit();
        }
      }
      if (fill) submit();
      await inFlight.all();
      let result: TransferResult;
      if (compressed) {
        result = { ...(await compressed.finish()), rawSize: counter.bytes };
        lane.release();
      } else {
        await file.finish(position);
        result = { size: position, sha256: await lane.digest() };
      }
      rmSync(this.socketPath, { force: true });
      this.resolveDone(result);
    } catch (err) {
      lane.discard();
      socket.destroy();
      await file.close();
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
  const input = await open(file, 'r');
  let failure: Error | undefined;
  const abort = () => {
    failure = new Error('transfer cancelled');
    socket.destroy();
  };
  options.signal?.addEventListener('abort', abort, { once: true });
  socket.on('error', (err) => {
    failure ??= err;
  });
  const send = (chunk: Buffer) =>
    new Promise<void>((resolve, reject) => {
      socket.write(chunk, (err) => (err ? reject(err) : resolve()));
    });
  try {
    const sha256 = await (options.codec ? sendDecompressed(input, send, counter, () => failure) : sendRaw(input, send, counter, () => failure));
    if (failure) throw failure;
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.end(() => resolve());
    });
    return { size: counter.bytes, sha256 };
  } catch (err) {
    socket.destroy();
    throw err;
  } finally {
    options.signal?.removeEventListener('abort', abort);
    await input.close();
  }
}

/** Streams a raw state file through a lane: a slot is reused once the socket has taken it and it is hashed. */
async function sendRaw(input: FileHandle, send: (chunk: Buffer) => Promise<void>, counter: ChunkCounter, failed: () => Error | undefined): Promise<string> {
  const lane = HashLane.acquire();
  const inFlight = new SlotsInFlight();
  try {
    for (let slot = 0; ; slot = (slot + 1) % SLOTS) {
      const failure = failed();
      if (failure) throw failure;
      await inFlight.free(slot);
      const buf = lane.slots[slot] as Buffer;
      const { bytesRead } = await input.read(buf, 0, SLOT_BYTES, null);
      if (bytesRead === 0) break;
      const chunk = buf.subarray(0, bytesRead);
      counter.add(chunk);
      inFlight.add(slot, Promise.all([send(chunk), lane.hash(slot, bytesRead)]));
    }
    await inFlight.all();
    return await lane.digest();
  } catch (err) {
    lane.discard();
    throw err;
  }
}

/** Streams a compressed state file decompressed, hashing the file's bytes; one frame in the socket at a time. */
async function sendDecompressed(input: FileHandle, send: (chunk: Buffer) => Promise<void>, counter: ChunkCounter, failed: () => Error | undefined): Promise<string> {
  const hash = createHash('sha256');
  let inFlight: Promise<void> = Promise.resolve();
  for await (const raw of decompressedFrames(input, hash, (n) => counter.add({ length: n }))) {
    const failure = failed();
    if (failure) throw failure;
    await inFlight;
    inFlight = send(raw);
    inFlight.catch(() => undefined); // awaited below
  }
  await inFlight;
  return hash.digest('hex');
}

export async function removeQuietly(path: string): Promise<void> {
  await rm(path, { force: true });
}
