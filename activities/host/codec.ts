// Opt-in compression of state files (`stateCompression: zstd` in the cluster spec), for hosts whose
// storage, not QEMU, is the bottleneck (a shared NFS at 100 MB/s). Off by default: on a fast local disk it
// costs more time than it saves (test guests: files 0.13–0.23 of the stream, but ~280 MiB/s against the
// plain path's 370–560 on 2 cores). zstd level 1 (@toondepauw/node-zstd, whose platform
// binaries are npm packages) was chosen by measurement over lz4-napi and zlib: on program code it
// compressed to 0.28 of the size at ~450 MiB/s per core (lz4-napi 0.43 at ~250, deflate-1 0.35 at ~90).
//
// A compressed state file is a sequence of frames, each [raw length u32 LE][compressed length u32 LE]
// [one zstd frame], one per ring slot of the stream. Compression and decompression run on libuv's thread
// pool (the binding's async calls); the sha256 recorded is that of the file's bytes, so a checkpoint is
// verified without decompressing it.
import { createHash, type Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { Decoder, Encoder } from '@toondepauw/node-zstd';
import type { StateCodec } from '../../common/spec';
import { SLOT_BYTES } from '../../node/hasher';
import type { StateFile } from './state-file';

export type { StateCodec };

const ZSTD_LEVEL = 1;
const HEADER_BYTES = 8;
/** zstd's bound for one slot, rounded up: a header claiming more is corrupt. */
const MAX_FRAME_BYTES = SLOT_BYTES + (SLOT_BYTES >> 7) + 4096;

/** Appends compressed frames to a state file in order, hashing what it writes. */
export class CompressedWriter {
  private readonly encoder = new Encoder(ZSTD_LEVEL);
  private readonly hash: Hash = createHash('sha256');
  /** The last frame written: frames are compressed in parallel but written in order. */
  private tail: Promise<void> = Promise.resolve();
  private position = 0;

  constructor(private readonly file: StateFile) {}

  /** Compresses `raw`; resolves once `raw` may be reused (its frame is written later, in order). */
  async push(raw: Buffer): Promise<void> {
    const frame = this.encoder.encode(raw);
    const previous = this.tail;
    this.tail = Promise.all([previous, frame]).then(([, compressed]) => this.append(raw.length, compressed));
    this.tail.catch(() => undefined); // reported by finish()
    await frame;
  }

  private async append(rawLength: number, compressed: Buffer): Promise<void> {
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeUInt32LE(rawLength, 0);
    header.writeUInt32LE(compressed.length, 4);
    const bytes = Buffer.concat([header, compressed]);
    this.hash.update(bytes);
    await this.file.write(bytes, bytes.length, this.position);
    this.position += bytes.length;
  }

  /** Waits for every frame, makes the file durable; returns its size and sha256. */
  async finish(): Promise<{ size: number; sha256: string }> {
    await this.tail;
    await this.file.finish(this.position);
    return { size: this.position, sha256: this.hash.digest('hex') };
  }
}

/**
 * Reads a compressed state file frame by frame, hashing every byte read; yields each frame decompressed
 * (the next frame is read and decompressed while the caller sends the previous one).
 */
export async function* decompressedFrames(input: FileHandle, hash: Hash, onRead: (bytes: number) => void): AsyncGenerator<Buffer> {
  const decoder = new Decoder();
  const readExactly = async (n: number): Promise<Buffer | undefined> => {
    const buf = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const { bytesRead } = await input.read(buf, got, n - got, null);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got === 0) return undefined;
    if (got < n) throw new Error('compressed state file is truncated');
    hash.update(buf);
    onRead(n);
    return buf;
  };
  const nextFrame = async (): Promise<Buffer | undefined> => {
    const header = await readExactly(HEADER_BYTES);
    if (!header) return undefined;
    const rawLength = header.readUInt32LE(0);
    const length = header.readUInt32LE(4);
    if (rawLength > SLOT_BYTES || length > MAX_FRAME_BYTES || length === 0) throw new Error('compressed state file has a corrupt frame header');
    const frame = await readExactly(length);
    if (!frame) throw new Error('compressed state file is truncated');
    const raw = await decoder.decode(frame);
    if (raw.length !== rawLength) throw new Error('compressed state file has a frame of the wrong size');
    return raw;
  };
  let next = nextFrame();
  for (;;) {
    const raw = await next;
    if (!raw) return;
    next = nextFrame();
    next.catch(() => undefined); // surfaces at the next await
    yield raw;
  }
}
