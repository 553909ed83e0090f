// Proves the guest workloads are real consistency DETECTORS: each fault we inject (a
// duplicated, lost, altered or closed ring frame; a journal gap, a flipped byte, a disk
// that runs behind or ahead of the writer's memory; corrupted RAM) is reported on the
// documented line with the documented exit code, and a healthy run reports nothing.
// Host builds of the workloads come from the guest image (bash guest/build.sh); the last
// tests boot the image in QEMU (TCG) and run the workloads inside it.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { FrameProxy, type Fault, type LinkAddrs } from './helpers/proxy';

const REPO = path.resolve(__dirname, '..', '..'); // dist/test -> repo root
// Waits end on events; this only bounds how long a broken run takes to fail.
const WAIT_MS = 30_000;
const BOOT_WAIT_MS = 60_000;

function imageDir(): string {
  const current = path.join(REPO, '.cache', 'guest', 'current');
  if (!fs.existsSync(path.join(current, 'image.json'))) {
    throw new Error(`no guest image at ${current}: run \`bash guest/build.sh\` first`);
  }
  return fs.realpathSync(current);
}

const bin = (name: string): string => path.join(imageDir(), 'bin', name);

// ---------------------------------------------------------------------------------------
// Processes and cleanup

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A child process whose stdout lines are collected and can be awaited. */
class Proc {
  readonly lines: string[] = [];
  private readonly errLines: string[] = [];
  private readonly child: ChildProcess;
  private closed = false;
  private readonly listeners = new Set<() => void>();
  readonly exit: Promise<Exit>;

  constructor(
    readonly name: string,
    cmd: string,
    args: readonly string[],
  ) {
    this.child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = this.child.stdout;
    const err = this.child.stderr;
    if (out === null || err === null) throw new Error('stdio pipes missing');
    readline.createInterface({ input: out }).on('line', (l) => this.push(this.lines, l));
    readline.createInterface({ input: err }).on('line', (l) => this.push(this.errLines, l));
    // 'close' (not 'exit'): fires only after all output has been read.
    this.exit = new Promise((resolve) => {
      this.child.once('error', (e) => {
        this.errLines.push(`spawn error: ${e.message}`);
        this.closed = true;
        this.notify();
        resolve({ code: null, signal: null });
      });
      this.child.once('close', (code, signal) => {
        this.closed = true;
        this.notify();
        resolve({ code, signal });
      });
    });
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.name} has no pid`);
    return this.child.pid;
  }

  get running(): boolean {
    return !this.closed;
  }

  output(): string {
    return [`--- ${this.name} stdout`, ...this.lines, `--- ${this.name} stderr`, ...this.errLines].join('\n');
  }

  /** Resolve with the first line from index `from` on that satisfies `pred`. */
  async waitFor(what: string, pred: (line: string) => boolean, from = 0, timeoutMs = WAIT_MS): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.slice(from).find(pred);
      if (hit !== undefined) return hit;
      if (this.closed) throw new Error(`${this.name} ended without ${what}\n${this.output()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what} from ${this.name}\n${this.output()}`);
      await this.changed(left);
    }
  }

  async waitForLine(line: string, from = 0): Promise<void> {
    await this.waitFor(JSON.stringify(line), (l) => l === line, from);
  }

  async exitCode(timeoutMs = WAIT_MS): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.name} did not exit\n${this.output()}`)), timeoutMs);
    });
    try {
      return (await Promise.race([this.exit, timeout])).code;
    } finally {
      clearTimeout(timer);
    }
  }

  kill(): void {
    if (this.closed) return;
    try {
      process.kill(this.pid, 'SIGKILL'); // by PID; also ends a SIGSTOPped process
    } catch {
      // already gone
    }
  }

  private push(into: string[], line: string): void {
    into.push(line);
    this.notify();
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }

  private changed(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.listeners.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.listeners.add(done);
    });
  }
}

/** Everything one test starts; torn down in the test's after hook, pass or fail. */
class Scope {
  private readonly procs: Proc[] = [];
  private readonly proxies: FrameProxy[] = [];
  private readonly dirs: string[] = [];

  constructor(t: TestContext) {
    t.after(() => this.dispose());
  }

  spawn(name: string, cmd: string, args: readonly string[]): Proc {
    const p = new Proc(name, cmd, args);
    this.procs.push(p);
    return p;
  }

  async proxy(targetPort: number, fault?: Fault): Promise<FrameProxy> {
    const p = await FrameProxy.start(targetPort, fault);
    this.proxies.push(p);
    return p;
  }

  tmpdir(): string {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'vccr-guest-test-'));
    this.dirs.push(d);
    return d;
  }

  private async dispose(): Promise<void> {
    for (const p of this.procs) p.kill();
    await Promise.all(this.procs.map((p) => p.exit));
    await Promise.all(this.proxies.map((p) => p.close()));
    for (const d of this.dirs) fs.rmSync(d, { recursive: true, force: true });
  }
}

async function until(what: string, cond: () => boolean, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function procState(pid: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.charAt(stat.lastIndexOf(')') + 2);
}

/** SIGSTOP and wait until the kernel reports the process stopped (delivery is async). */
async function stopProcess(p: Proc): Promise<void> {
  process.kill(p.pid, 'SIGSTOP');
  await until(`${p.name} to stop`, () => procState(p.pid) === 'T');
}

function resumeProcess(p: Proc): void {
  process.kill(p.pid, 'SIGCONT');
}

// ---------------------------------------------------------------------------------------
// vccr-ring on loopback, one fault-injecting proxy per link

/** n distinct free 127.0.0.1 ports (all held open together, so they differ). */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => {
      const s = net.createServer();
      return new Promise<net.Server>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve(s));
      });
    }),
  );
  const ports = servers.map((s) => {
    const a = s.address();
    if (a === null || typeof a === 'string') throw new Error('no port');
    return a.port;
  });
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

interface Ring {
  nodes: Proc[];
  proxies: FrameProxy[];
}

interface RingOptions {
  /** Fault on the link from node `link` to node `link + 1`. */
  fault?: { link: number; fault: Fault };
  stallSec?: number;
  delayMs?: number;
}

const RING_N = 3;

async function startRing(scope: Scope, opts: RingOptions = {}): Promise<Ring> {
  const ports = await freePorts(RING_N);
  const proxies: FrameProxy[] = [];
  for (let i = 0; i < RING_N; i++) {
    const fault = opts.fault?.link === i ? opts.fault.fault : undefined;
    proxies.push(await scope.proxy(ports[(i + 1) % RING_N] ?? 0, fault));
  }
  const nodes = proxies.map((proxy, i) =>
    scope.spawn(`ring${i}`, bin('vccr-ring'), [
      ...['--id', `${i}`, '--nodes', `${RING_N}`, '--bind', '127.0.0.1', '--listen', `${ports[i]}`],
      ...['--next', `127.0.0.1:${proxy.port}`, '--delay-ms', `${opts.delayMs ?? 10}`],
      ...['--stall-sec', `${opts.stallSec ?? 10}`, '--connect-sec', '20'],
    ]),
  );
  return { nodes, proxies };
}

/** Node i's k-th token (k = 1, 2, ...) must be i + (k-1)*N; node 0's must be k*N. */
const expectedToken = (id: number, k: number): number => (id === 0 ? k * RING_N : id + (k - 1) * RING_N);

const tokenValues = (p: Proc, id: number): number[] =>
  p.lines.flatMap((l) => {
    const m = /^RING TOKEN id=(\d+) value=(\d+)$/.exec(l);
    return m !== null && Number(m[1]) === id ? [Number(m[2])] : [];
  });

const errorLines = (p: Proc): string[] => p.lines.filter((l) => l.startsWith('RING ERROR'));

async function allExitWith2(ring: Ring): Promise<void> {
  for (const n of ring.nodes) assert.equal(await n.exitCode(), 2, `${n.name} exit code\n${n.output()}`);
}

// Link 1 (node 1 -> node 2) carries values 2, 5, 8, 11, 14, ...: its 5th frame is 14, which
// is exactly node 2's 5th expected token. The faults below all hit that frame.
const LINK = 1;
const FRAME = 5;

test('ring: healthy 3-node ring through the proxies passes tokens exactly, no errors', async (t) => {
  const scope = new Scope(t);
  const ring = await startRing(scope);
  for (const [i, n] of ring.nodes.entries()) {
    await n.waitFor('30 tokens', () => tokenValues(n, i).length >= 30);
  }
  for (const [i, n] of ring.nodes.entries()) {
    assert.deepEqual(errorLines(n), [], n.output());
    const got = tokenValues(n, i);
    assert.deepEqual(got, got.map((_, k) => expectedToken(i, k + 1)), `node ${i} token sequence`);
    assert.equal(n.lines[0], `RING READY id=${i}`);
  }
  // The CONN line names the real sockets: the proxy saw the same addresses.
  const links: LinkAddrs[] = await Promise.all(ring.proxies.map((p) => p.linked));
  for (const [i, n] of ring.nodes.entries()) {
    const conn = await n.waitFor('CONN', (l) => l.startsWith('RING CONN'));
    const m = /^RING CONN id=(\d+) in=(\S+) out=(\S+)->(\S+)$/.exec(conn);
    assert.ok(m, conn);
    const prev = (i + RING_N - 1) % RING_N;
    assert.equal(m[1], `${i}`);
    assert.equal(m[2], links[prev]?.targetLocal, `node ${i} in= is the proxy's socket towards it`);
    assert.equal(m[3], links[i]?.sourcePeer, `node ${i} out= local address`);
    assert.equal(m[4], `127.0.0.1:${ring.proxies[i]?.port}`);
  }
});

const TOKEN_FAULTS: Array<{ name: string; fault: Fault; line: string }> = [
  {
    name: 'duplicated frame -> duplicate',
    fault: { kind: 'duplicate', frame: FRAME },
    line: 'RING ERROR id=2 reason=duplicate expected=17 got=14',
  },
  {
    name: 'value +1 (valid checksum) -> skip',
    fault: { kind: 'rewrite', frame: FRAME, delta: 1n },
    line: 'RING ERROR id=2 reason=skip expected=14 got=15',
  },
  {
    name: 'value -1 (valid checksum) -> reorder',
    fault: { kind: 'rewrite', frame: FRAME, delta: -1n },
    line: 'RING ERROR id=2 reason=reorder expected=14 got=13',
  },
  {
    name: 'flipped bit -> bad-frame',
    fault: { kind: 'corrupt', frame: FRAME },
    line: 'RING ERROR id=2 reason=bad-frame conn=in expected=14',
  },
];

for (const c of TOKEN_FAULTS) {
  test(`ring: ${c.name}`, async (t) => {
    const scope = new Scope(t);
    const ring = await startRing(scope, { fault: { link: LINK, fault: c.fault } });
    const node2 = ring.nodes[2];
    assert.ok(node2);
    await node2.waitForLine(c.line);
    assert.equal(await node2.exitCode(), 2);
    assert.deepEqual(errorLines(node2), [c.line]);
    // Node 2's exit closes its links, so its neighbours stop too (eof/reset).
    await allExitWith2(ring);
  });
}

test('ring: dropped frame -> stall', async (t) => {
  const scope = new Scope(t);
  const ring = await startRing(scope, { fault: { link: LINK, fault: { kind: 'drop', frame: FRAME } }, stallSec: 2 });
  await allExitWith2(ring);
  // The lost token is the only fault, so the first error anywhere is a stall; a node whose
  // neighbour exited first may report that neighbour's eof/reset instead.
  const errors = ring.nodes.map((n) => {
    const e = errorLines(n);
    assert.equal(e.length, 1, n.output());
    return e[0] ?? '';
  });
  const stalls = errors.filter((e) => / reason=stall /.test(e));
  assert.ok(stalls.length >= 1, errors.join('\n'));
  for (const e of errors) assert.match(e, /^RING ERROR id=\d reason=(stall expected=\d+ idle-ms=\d+|(eof|reset) conn=(in|out) expected=\d+)$/);
  // A stalled node names the token it was waiting for: its 5th (node 2), or its 6th/5th.
  const awaited: Record<string, number> = { '0': expectedToken(0, 5), '1': expectedToken(1, 6), '2': expectedToken(2, 5) };
  for (const s of stalls) {
    const m = /^RING ERROR id=(\d) reason=stall expected=(\d+) /.exec(s);
    assert.ok(m);
    assert.equal(Number(m[2]), awaited[m[1] ?? '']);
  }
});

test('ring: proxy closes a link -> eof/reset on both ends', async (t) => {
  const scope = new Scope(t);
  const ring = await startRing(scope, { fault: { link: LINK, fault: { kind: 'close', frame: FRAME } } });
  const [, node1, node2] = ring.nodes;
  assert.ok(node1 && node2);
  await node1.waitFor('eof/reset on out', (l) => /^RING ERROR id=1 reason=(eof|reset) conn=out expected=16$/.test(l));
  await node2.waitFor('eof/reset on in', (l) => /^RING ERROR id=2 reason=(eof|reset) conn=in expected=14$/.test(l));
  await allExitWith2(ring);
});

test('ring: successor never listening -> connect error', async (t) => {
  const scope = new Scope(t);
  const [listen, nobody] = await freePorts(2);
  const node = scope.spawn('ring0', bin('vccr-ring'), [
    ...['--id', '0', '--nodes', '2', '--bind', '127.0.0.1', '--listen', `${listen}`],
    ...['--next', `127.0.0.1:${nobody}`, '--connect-sec', '1'],
  ]);
  await node.waitForLine('RING ERROR id=0 reason=connect conn=out errno=ECONNREFUSED');
  assert.equal(await node.exitCode(), 2);
});

// ---------------------------------------------------------------------------------------
// vccr-journal on a zero-filled file

const SLOT = 4096;
const SLOTS = 1024; // 4 MiB
const MASK64 = (1n << 64n) - 1n;

/** The record guest/journal.c writes at `seq` for `run`: re-implemented from the documented
 * format, so a test can forge a record "from the future" that is valid in every respect. */
function journalRecord(seq: bigint, run: bigint): Buffer {
  const r = Buffer.alloc(SLOT);
  r.write('VJNL', 0, 'latin1');
  r.writeUInt32BE(1, 4);
  r.writeBigUInt64BE(seq, 8);
  r.writeBigUInt64BE(run, 16);
  let st = run ^ ((seq * 0xd1b54a32d192ed03n) & MASK64);
  for (let off = 24; off < SLOT - 8; off += 8) {
    st = (st + 0x9e3779b97f4a7c15n) & MASK64; // splitmix64
    let z = st;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
    r.writeBigUInt64BE(z ^ (z >> 31n), off);
  }
  let h = 14695981039346656037n; // FNV-1a 64 over everything but the checksum
  for (let i = 0; i < SLOT - 8; i++) h = ((h ^ BigInt(r[i] ?? 0)) * 1099511628211n) & MASK64;
  r.writeBigUInt64BE(h, SLOT - 8);
  return r;
}

function zeroFile(dir: string, name: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, Buffer.alloc(SLOTS * SLOT));
  return p;
}

function readSlot(file: string, slot: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(SLOT);
    fs.readSync(fd, b, 0, SLOT, slot * SLOT);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

function writeAt(file: string, offset: number, data: Buffer): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, data, 0, data.length, offset);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

const writeSlot = (file: string, slot: number, data: Buffer): void => writeAt(file, slot * SLOT, data);

/** Highest slot holding anything: the writer's last durable record while it is stopped. */
function lastNonZeroSlot(file: string): number {
  const all = fs.readFileSync(file);
  for (let s = SLOTS - 1; s >= 0; s--) {
    if (all.subarray(s * SLOT, (s + 1) * SLOT).some((b) => b !== 0)) return s;
  }
  return -1;
}

async function journal(scope: Scope, args: readonly string[]): Promise<{ code: number | null; lines: string[] }> {
  const p = scope.spawn(`journal ${args[0] ?? ''}`, bin('vccr-journal'), args);
  const code = await p.exitCode();
  return { code, lines: p.lines };
}

async function verify(scope: Scope, file: string): Promise<{ code: number | null; line: string }> {
  const r = await journal(scope, ['verify', '--dev', file]);
  assert.equal(r.lines.length, 1, r.lines.join('\n'));
  return { code: r.code, line: r.lines[0] ?? '' };
}

/** A journal of 50 records written by the real writer; cases corrupt copies of it. */
async function goldenJournal(scope: Scope): Promise<{ dir: string; file: string; run: bigint }> {
  const dir = scope.tmpdir();
  const file = zeroFile(dir, 'golden.img');
  const w = await journal(scope, ['write', '--dev', file, '--max', '50', '--delay-ms', '0']);
  assert.equal(w.code, 0, w.lines.join('\n'));
  assert.match(w.lines[0] ?? '', /^JOURNAL OPEN dev=\S+ direct=[01] slots=1024$/);
  const start = /^JOURNAL START run=([0-9a-f]{16})$/.exec(w.lines[1] ?? '');
  assert.ok(start, w.lines.join('\n'));
  assert.deepEqual(w.lines.slice(2, -1), Array.from({ length: 50 }, (_, k) => `JOURNAL WROTE seq=${k}`));
  assert.equal(w.lines.at(-1), 'JOURNAL DONE records=50');
  return { dir, file, run: BigInt(`0x${start[1]}`) };
}

function copyOf(golden: { dir: string; file: string }, name: string): string {
  const p = path.join(golden.dir, name);
  fs.copyFileSync(golden.file, p);
  return p;
}

test('journal: writer + verify agree on a healthy journal; format matches the README', async (t) => {
  const scope = new Scope(t);
  const g = await goldenJournal(scope);
  assert.deepEqual(await verify(scope, g.file), { code: 0, line: 'JOURNAL OK records=50 last=49' });
  assert.ok(readSlot(g.file, 7).equals(journalRecord(7n, g.run)), 'slot 7 is byte-identical to the documented format');
});

test('journal: verify reports each kind of damage at the exact slot', async (t) => {
  const scope = new Scope(t);
  const g = await goldenJournal(scope);
  const other = await goldenJournal(scope); // a different run id
  const cases: Array<{ name: string; damage: (f: string) => void; line: string }> = [
    // A zeroed record ends the journal there; the records after it make it a gap.
    { name: 'zeroed record', damage: (f) => writeSlot(f, 25, Buffer.alloc(SLOT)), line: 'JOURNAL ERROR reason=gap at=25 found=26' },
    { name: 'flipped payload byte', damage: (f) => writeAt(f, 30 * SLOT + 100, Buffer.from([readSlot(f, 30)[100]! ^ 0xff])), line: 'JOURNAL ERROR reason=bad-checksum at=30' },
    {
      name: 'two records swapped',
      damage: (f) => {
        const [a, b] = [readSlot(f, 10), readSlot(f, 11)];
        writeSlot(f, 10, b);
        writeSlot(f, 11, a);
      },
      line: 'JOURNAL ERROR reason=bad-seq at=10',
    },
    { name: 'overwritten magic', damage: (f) => writeAt(f, 5 * SLOT, Buffer.from('XXXX')), line: 'JOURNAL ERROR reason=bad-magic at=5' },
    { name: 'record of another run', damage: (f) => writeSlot(f, 20, readSlot(other.file, 20)), line: 'JOURNAL ERROR reason=run-id at=20' },
    { name: 'stray data past the end', damage: (f) => writeAt(f, 200 * SLOT + 7, Buffer.from([1])), line: 'JOURNAL ERROR reason=gap at=50 found=200' },
  ];
  for (const [i, c] of cases.entries()) {
    const f = copyOf(g, `case${i}.img`);
    c.damage(f);
    assert.deepEqual(await verify(scope, f), { code: 1, line: c.line }, c.name);
  }
});

test('journal: a writer restarted on its own journal resumes after the last record', async (t) => {
  const scope = new Scope(t);
  const file = zeroFile(scope.tmpdir(), 'resume.img');
  const first = await journal(scope, ['write', '--dev', file, '--max', '10', '--delay-ms', '0']);
  assert.equal(first.code, 0);
  const run = /^JOURNAL START run=([0-9a-f]{16})$/.exec(first.lines[1] ?? '')?.[1];
  const second = await journal(scope, ['write', '--dev', file, '--max', '20', '--delay-ms', '0']);
  assert.equal(second.code, 0, second.lines.join('\n'));
  assert.equal(second.lines[1], `JOURNAL RESUME next=10 run=${run}`);
  assert.equal(second.lines[2], 'JOURNAL WROTE seq=10');
  assert.equal(second.lines.at(-1), 'JOURNAL DONE records=20');
  assert.deepEqual(await verify(scope, file), { code: 0, line: 'JOURNAL OK records=20 last=19' });
});

/** A long-running writer, stopped (SIGSTOP) after a few records; its file is changed
 * underneath it as a mismatched checkpoint/restart would, then it is continued. */
async function stoppedWriter(scope: Scope): Promise<{ w: Proc; file: string; run: bigint }> {
  const file = zeroFile(scope.tmpdir(), 'live.img');
  const w = scope.spawn('writer', bin('vccr-journal'), ['write', '--dev', file, '--delay-ms', '100']);
  const start = await w.waitFor('START', (l) => l.startsWith('JOURNAL START'));
  await w.waitForLine('JOURNAL WROTE seq=3');
  await stopProcess(w);
  return { w, file, run: BigInt(`0x${start.slice('JOURNAL START run='.length)}`) };
}

test('journal: disk ahead of memory (a future record appears under a stopped writer)', async (t) => {
  const scope = new Scope(t);
  const { w, file, run } = await stoppedWriter(scope);
  // While stopped, the writer has made at most one more write (L+1) without checking it
  // again, so slot L+2 is guaranteed to be checked after our change, whatever its phase.
  const at = lastNonZeroSlot(file) + 2;
  writeSlot(file, at, journalRecord(BigInt(at), run)); // exactly what it would write there
  resumeProcess(w);
  await w.waitForLine(`JOURNAL ERROR reason=disk-ahead-of-memory at=${at} found=record`);
  assert.equal(await w.exitCode(), 2);
});

test('journal: disk behind memory (the last durable record vanishes under a stopped writer)', async (t) => {
  const scope = new Scope(t);
  const { w, file } = await stoppedWriter(scope);
  // Zeroing record L is what restoring the disk from before L was written looks like. The
  // writer checks L before it writes L+1; if the stop landed between that check and the
  // write (microseconds out of a 100 ms cycle) it writes L+1 instead: then try again.
  for (let attempt = 1; attempt <= 10; attempt++) {
    const last = lastNonZeroSlot(file);
    writeSlot(file, last, Buffer.alloc(SLOT));
    const from = w.lines.length;
    resumeProcess(w);
    const outcome = await w.waitFor('ERROR or a newer record', (l) => {
      const m = /^JOURNAL WROTE seq=(\d+)$/.exec(l);
      return l.startsWith('JOURNAL ERROR') || (m !== null && Number(m[1]) > last);
    }, from);
    if (outcome.startsWith('JOURNAL ERROR')) {
      assert.equal(outcome, `JOURNAL ERROR reason=disk-behind-memory at=${last} found=zero`);
      assert.equal(await w.exitCode(), 2);
      return;
    }
    t.diagnostic(`attempt ${attempt}: stop landed after the check of ${last}; retrying`);
    await stopProcess(w);
  }
  assert.fail(`writer never checked a record we removed\n${w.output()}`);
});

// ---------------------------------------------------------------------------------------
// vccr-memfill

test('memfill: corrupted RAM (under a stopped process) is detected', async (t) => {
  const scope = new Scope(t);
  const mb = 3;
  const p = scope.spawn('memfill', bin('vccr-memfill'), ['--mb', `${mb}`, '--seed', '7']);
  await p.waitForLine(`MEMFILL READY mb=${mb}`);
  await p.waitForLine('MEMFILL ALIVE n=100');
  await stopProcess(p);
  // The fill is the only anonymous mapping of exactly mb MiB in this static binary.
  const region = fs
    .readFileSync(`/proc/${p.pid}/maps`, 'utf8')
    .split('\n')
    .map((l) => /^([0-9a-f]+)-([0-9a-f]+) rw-p 00000000 00:00 0\s*$/.exec(l))
    .flatMap((m) => (m ? [{ start: parseInt(m[1] ?? '', 16), end: parseInt(m[2] ?? '', 16) }] : []))
    .filter((r) => r.end - r.start === mb << 20);
  assert.equal(region.length, 1, 'memfill region in /proc/pid/maps');
  const r = region[0]!;
  const fd = fs.openSync(`/proc/${p.pid}/mem`, 'r+');
  try {
    fs.writeSync(fd, Buffer.alloc(r.end - r.start, 0x5a), 0, r.end - r.start, r.start);
  } finally {
    fs.closeSync(fd);
  }
  resumeProcess(p);
  await p.waitFor('corrupt', (l) => /^MEMFILL ERROR reason=corrupt page=\d+ n=\d+$/.test(l));
  assert.equal(await p.exitCode(), 2);
});

test('memfill: --delay-ms 0 --rate-ms prints RATE lines (rewrites per guest-time interval); ALIVE follows --alive-every', async (t) => {
  const scope = new Scope(t);
  const p = scope.spawn('memfill', bin('vccr-memfill'), ['--mb', '2', '--delay-ms', '0', '--alive-every', '1000', '--rate-ms', '100']);
  await p.waitFor('3 RATE lines', () => p.lines.filter((l) => l.startsWith('MEMFILL RATE')).length >= 3);
  const rates = p.lines.filter((l) => l.startsWith('MEMFILL RATE')).map((l) => /^MEMFILL RATE n=(\d+) ms=(\d+) rewrites=(\d+)$/.exec(l));
  let previousN = 0;
  for (const m of rates) {
    assert.ok(m, 'RATE line format');
    const [n, ms, rewrites] = [Number(m[1]), Number(m[2]), Number(m[3])];
    assert.ok(ms >= 100, `an interval of at least --rate-ms (${ms})`);
    assert.equal(n - previousN, rewrites, 'rewrites counts the interval');
    previousN = n;
  }
  assert.ok(p.lines.filter((l) => l.startsWith('MEMFILL ALIVE')).every((l, i) => l === `MEMFILL ALIVE n=${(i + 1) * 1000}`));
});

test('memfill: by default prints no RATE line', async (t) => {
  const scope = new Scope(t);
  const p = scope.spawn('memfill', bin('vccr-memfill'), ['--mb', '1']);
  await p.waitForLine('MEMFILL ALIVE n=200');
  assert.deepEqual(p.lines.filter((l) => l.startsWith('MEMFILL RATE')), []);
});

// ---------------------------------------------------------------------------------------
// The image in QEMU

interface Boot {
  qemu: Proc;
  console: () => string[];
  /** Wait for a console line; returns its index and ms since QEMU was started. */
  waitFor: (what: string, pred: (l: string) => boolean) => Promise<{ index: number; ms: number }>;
}

function bootGuest(scope: Scope, append: string, extra: readonly string[] = []): Boot {
  const img = imageDir();
  const consolePath = path.join(scope.tmpdir(), 'console.log');
  const started = Date.now();
  const qemu = scope.spawn('qemu', 'qemu-system-x86_64', [
    ...['-accel', 'tcg', '-m', '256', '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot'],
    ...['-kernel', path.join(img, 'vmlinuz'), '-initrd', path.join(img, 'initrd.img')],
    // panic=-1 + -no-reboot: a guest panic ends QEMU at once instead of hanging the test.
    ...['-append', `console=ttyS0 quiet panic=-1 ${append}`, '-serial', `file:${consolePath}`],
    ...extra,
  ]);
  const console = (): string[] =>
    fs.existsSync(consolePath) ? fs.readFileSync(consolePath, 'latin1').split(/\r?\n/) : [];
  const waitFor = async (what: string, pred: (l: string) => boolean): Promise<{ index: number; ms: number }> => {
    const deadline = started + BOOT_WAIT_MS;
    for (;;) {
      const index = console().findIndex(pred);
      if (index >= 0) return { index, ms: Date.now() - started };
      const dump = `\n--- console\n${console().join('\n')}\n${qemu.output()}`;
      if (!qemu.running) throw new Error(`QEMU exited before ${what}${dump}`);
      if (Date.now() > deadline) throw new Error(`no ${what} on the console within ${BOOT_WAIT_MS} ms${dump}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { qemu, console, waitFor };
}

const READY = 'VCCR-GUEST-READY';

test('guest: boots to VCCR-GUEST-READY (idle)', async (t) => {
  const scope = new Scope(t);
  const boot = bootGuest(scope, 'vccr.run=idle', ['-nic', 'none']);
  const ready = await boot.waitFor(READY, (l) => l === READY);
  t.diagnostic(`guest boot (QEMU start -> ${READY}): ${ready.ms} ms`);
  assert.deepEqual(boot.console().filter((l) => /insmod|VCCR-GUEST-ERROR|VCCR-WORKLOAD-EXIT/.test(l)), []);
});

test('guest: ring on eth0 (vccr.ip, comma args) over the same TCP connection', async (t) => {
  const scope = new Scope(t);
  // A 1-node ring sends the token to itself through eth0's address: proves the address
  // was configured before READY and that vccr.args became separate argv entries.
  const ip = '10.77.0.1';
  const args = ['--id', '0', '--nodes', '1', '--listen', '7000', '--next', `${ip}:7000`, '--delay-ms', '5'];
  const boot = bootGuest(scope, `vccr.ip=${ip}/24 vccr.hostname=vccr-t0 vccr.run=ring vccr.args=${args.join(',')}`, [
    ...['-device', 'virtio-net-pci'], // no netdev: the NIC only needs to exist for eth0
  ]);
  const ready = await boot.waitFor(READY, (l) => l === READY);
  const conn = await boot.waitFor('RING CONN', (l) => l.startsWith('RING CONN'));
  await boot.waitFor('token 20', (l) => l === 'RING TOKEN id=0 value=20');
  assert.ok(ready.index < conn.index);
  assert.match(boot.console()[conn.index] ?? '', new RegExp(`^RING CONN id=0 in=${ip}:(\\d+) out=${ip}:\\1->${ip}:7000$`));
  assert.deepEqual(boot.console().filter((l) => l.startsWith('RING ERROR')), []);
});

test('guest: journal on a virtio disk, verified on the host', async (t) => {
  const scope = new Scope(t);
  const disk = path.join(scope.tmpdir(), 'disk.img');
  fs.writeFileSync(disk, Buffer.alloc(1 << 20));
  const boot = bootGuest(scope, 'vccr.run=journal vccr.args=write,--dev,/dev/vda,--max,20,--delay-ms,5', [
    ...['-nic', 'none', '-drive', `file=${disk},if=virtio,format=raw`],
  ]);
  await boot.waitFor('workload exit', (l) => l.startsWith('VCCR-WORKLOAD-EXIT'));
  const lines = boot.console();
  assert.ok(lines.includes('JOURNAL OPEN dev=/dev/vda direct=1 slots=256'), lines.join('\n'));
  assert.ok(lines.includes('JOURNAL DONE records=20'));
  assert.ok(lines.includes('VCCR-WORKLOAD-EXIT code=0'));
  boot.qemu.kill();
  await boot.qemu.exit;
  assert.deepEqual(await verify(scope, disk), { code: 0, line: 'JOURNAL OK records=20 last=19' });
});

test('guest: memfill fills and keeps dirtying RAM', async (t) => {
  const scope = new Scope(t);
  const boot = bootGuest(scope, 'vccr.run=memfill vccr.args=--mb,32', ['-nic', 'none']);
  await boot.waitFor('MEMFILL READY', (l) => l === 'MEMFILL READY mb=32');
  await boot.waitFor('MEMFILL ALIVE', (l) => l === 'MEMFILL ALIVE n=100');
});
