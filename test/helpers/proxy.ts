// A fault-injecting TCP proxy for vccr-ring's 16-byte token frames. It sits on one link
// of the ring (node i -> proxy -> node i+1), forwards whole frames, and can damage the
// n-th frame (1-based) in one chosen way so tests can prove the ring detects it.
import * as net from 'node:net';

export const FRAME_LEN = 16;

export type Fault =
  | { kind: 'duplicate'; frame: number } // forward the frame twice
  | { kind: 'drop'; frame: number } // swallow the frame: the token is lost
  | { kind: 'close'; frame: number } // swallow the frame and close both sides of the link
  | { kind: 'corrupt'; frame: number } // flip a bit of the value, checksum left stale
  | { kind: 'rewrite'; frame: number; delta: bigint }; // change the value, checksum fixed up

/** FNV-1a 32, the frame checksum used by guest/ring.c (over magic + value). */
export function fnv1a32(bytes: Uint8Array): number {
  let h = 2166136261;
  for (const b of bytes) {
    h ^= b;
    h = Math.imul(h, 16777619) >>> 0;
  }
  return h >>> 0;
}

export function encodeFrame(value: bigint): Buffer {
  const f = Buffer.alloc(FRAME_LEN);
  f.write('VTOK', 0, 'latin1');
  f.writeBigUInt64BE(value, 4);
  f.writeUInt32BE(fnv1a32(f.subarray(0, 12)), 12);
  return f;
}

export interface LinkAddrs {
  /** The ring node's outbound socket as seen by the proxy (node's local address). */
  sourcePeer: string;
  /** The proxy's own socket towards the next node (that node's `in=` peer). */
  targetLocal: string;
}

function addr(host: string | undefined, port: number | undefined): string {
  return `${host ?? '?'}:${port ?? 0}`;
}

export class FrameProxy {
  /** Frames received from the source so far (including the faulted one). */
  framesSeen = 0;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private linkResolve: (a: LinkAddrs) => void = () => {};
  /** Resolves when both legs of the link are connected. */
  readonly linked: Promise<LinkAddrs>;
  private closed = false;
  private hasSource = false;

  private constructor(
    private readonly targetPort: number,
    private readonly fault: Fault | undefined,
  ) {
    this.linked = new Promise((resolve) => (this.linkResolve = resolve));
    this.server = net.createServer({ pauseOnConnect: true }, (s) => this.onSource(s));
  }

  /** Listen on an ephemeral 127.0.0.1 port; forward to 127.0.0.1:targetPort. */
  static async start(targetPort: number, fault?: Fault): Promise<FrameProxy> {
    const p = new FrameProxy(targetPort, fault);
    await new Promise<void>((resolve, reject) => {
      p.server.once('error', reject);
      p.server.listen(0, '127.0.0.1', () => resolve());
    });
    return p;
  }

  get port(): number {
    const a = this.server.address();
    if (a === null || typeof a === 'string') throw new Error('proxy not listening');
    return a.port;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private track(s: net.Socket): net.Socket {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    return s;
  }

  private onSource(source: net.Socket): void {
    this.track(source);
    if (this.hasSource) {
      source.destroy(); // a ring link carries exactly one connection
      return;
    }
    this.hasSource = true;
    source.on('error', () => {});
    this.connectTarget(Date.now() + 30_000, (target) => {
      this.linkResolve({
        sourcePeer: addr(source.remoteAddress, source.remotePort),
        targetLocal: addr(target.localAddress, target.localPort),
      });
      // Either side going away takes the other down, so the ring nodes see EOF.
      source.on('close', () => target.destroy());
      target.on('close', () => source.destroy());
      let buf = Buffer.alloc(0);
      source.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= FRAME_LEN) {
          const frame = Buffer.from(buf.subarray(0, FRAME_LEN));
          buf = buf.subarray(FRAME_LEN);
          this.forward(frame, source, target);
        }
      });
      source.resume();
    }, () => source.destroy());
  }

  // The next node may not be listening yet when its predecessor connects to us: retry.
  private connectTarget(deadline: number, onUp: (t: net.Socket) => void, onFail: () => void): void {
    if (this.closed) return onFail();
    const t = this.track(net.connect({ host: '127.0.0.1', port: this.targetPort }));
    t.setNoDelay(true);
    const onError = (): void => {
      t.destroy();
      if (Date.now() > deadline) return onFail();
      setTimeout(() => this.connectTarget(deadline, onUp, onFail), 100);
    };
    t.once('error', onError);
    t.once('connect', () => {
      t.off('error', onError);
      t.on('error', () => {});
      onUp(t);
    });
  }

  private forward(frame: Buffer, source: net.Socket, target: net.Socket): void {
    this.framesSeen++;
    const f = this.fault;
    if (f === undefined || f.frame !== this.framesSeen) {
      target.write(frame);
      return;
    }
    switch (f.kind) {
      case 'duplicate':
        target.write(frame);
        target.write(frame);
        break;
      case 'drop':
        break;
      case 'close':
        source.destroy();
        target.destroy();
        break;
      case 'corrupt':
        frame[11] = (frame[11] ?? 0) ^ 0x01;
        target.write(frame);
        break;
      case 'rewrite':
        target.write(encodeFrame(frame.readBigUInt64BE(4) + f.delta));
        break;
    }
  }
}
