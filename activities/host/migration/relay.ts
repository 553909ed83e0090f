// A relay between QEMU and our StateReceiver for background snapshots, which keeps reading QEMU's stream
// to the end even when the receiver fails or the snapshot is cancelled.
//
// Why: QEMU 7.2 removes the userfaultfd write protection from guest RAM only when a background snapshot
// *completes*. If the stream breaks (receiver dies, store full) or it is cancelled, the protection
// stays, nobody serves the faults, and the guest — sometimes the whole QEMU main loop — freezes at its
// next write to a page not yet saved (measured; fixed upstream in 8.1). Draining the stream lets QEMU
// complete, which lifts the protection: the guest runs on and only our file is thrown away.
import { rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';

export class DrainingRelay {
  #server: Server | undefined;
  #upstream: Socket | undefined;
  #downstream: Socket | undefined;
  #dropped: Error | undefined;
  #bytes = 0;
  /** Resolves when QEMU has closed its end of the stream (or the relay was closed). */
  readonly ended: Promise<void>;
  #resolveEnded!: () => void;

  constructor(
    /** Where QEMU connects (`migrate unix:<listenPath>`). */
    readonly listenPath: string,
    /** Where the StateReceiver listens. */
    readonly targetPath: string,
  ) {
    this.ended = new Promise((resolve) => {
      this.#resolveEnded = resolve;
    });
  }

  /** Bytes QEMU has sent so far, passed on or drained. */
  get bytes(): number {
    return this.#bytes;
  }

  /** QEMU has connected (from then on only draining to its end is safe, never closing). */
  get connected(): boolean {
    return this.#upstream !== undefined;
  }

  /** Why the stream stopped being passed on, once it did. */
  get dropped(): Error | undefined {
    return this.#dropped;
  }

  /** Connects to the receiver, then listens for QEMU (exactly one connection). */
  async start(): Promise<void> {
    const downstream = await connectTo(this.targetPath);
    this.#downstream = downstream;
    downstream.on('error', (err) => this.drop(err));
    downstream.on('close', () => this.drop(new Error('the state receiver closed the stream early')));
    rmSync(this.listenPath, { force: true });
    const server = createServer({ pauseOnConnect: true }, (socket) => this.#accept(socket));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.listenPath, () => resolve());
    });
  }

  #accept(socket: Socket): void {
    if (this.#upstream) {
      socket.destroy();
      return;
    }
    this.#upstream = socket;
    this.#server?.close();
    rmSync(this.listenPath, { force: true });
    socket.on('data', (chunk: Buffer) => {
      this.#bytes += chunk.length;
    });
    socket.on('error', () => undefined); // QEMU killed: 'close' follows and ends the stream
    socket.on('close', () => this.#resolveEnded());
    if (this.#dropped || !this.#downstream) socket.resume();
    else socket.pipe(this.#downstream); // pipe ends the downstream when QEMU ends, so the receiver completes
  }

  /** Stop passing the stream on (keep draining it): the receiver sees its connection close. */
  drop(reason: Error): void {
    if (this.#dropped || this.#upstreamEnded()) return;
    this.#dropped = reason;
    const { downstream, upstream } = { downstream: this.#downstream, upstream: this.#upstream };
    if (upstream && downstream) upstream.unpipe(downstream);
    downstream?.destroy();
    upstream?.resume();
  }

  #upstreamEnded(): boolean {
    return this.#upstream?.readableEnded === true;
  }

  /** Releases everything (after the snapshot ended, or if `migrate` was never sent). */
  close(): void {
    this.#server?.close();
    rmSync(this.listenPath, { force: true });
    this.#upstream?.destroy();
    if (!this.#upstream) this.#downstream?.end();
    this.#resolveEnded();
  }
}

function connectTo(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}
