// The MPI test guest (guest/README.md, "MPI image"): initrd-mpi.img is initrd.img plus Open MPI;
// vccr-rsh/vccr-rshd behave like the ssh Open MPI's rsh launcher expects; three VMs on a private
// bridge run a real Open MPI job to `MPI RESULT OK` with the checksum this file computes on its
// own; and the job's self-check does fail when a wrong value is injected on one rank.
// Needs root (network namespace, taps) and the image: `bash guest/build.sh`.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expectedChecksum } from './helpers/mpi';
import * as readline from 'node:readline';
import { PrivateNetwork } from '../harness/netns';
import { janitor } from '../harness/janitor';
import type { ProcessIdentity } from '../node/proc';

const REPO = path.resolve(__dirname, '..', '..'); // dist/test -> repo root
const CLUSTER_WAIT_MS = 240_000; // boot + launch + job of three TCG VMs on a busy 2-core host
const VM_MEMORY_MIB = 256;
const IPS = ['10.77.0.11', '10.77.0.12', '10.77.0.13'] as const;

function imageDir(): string {
  const current = path.join(REPO, '.cache', 'guest', 'current');
  if (!fs.existsSync(path.join(current, 'initrd-mpi.img'))) {
    throw new Error(`no MPI guest image at ${current}: run \`bash guest/build.sh\` first`);
  }
  return fs.realpathSync(current);
}

// ---------------------------------------------------------------------------------------
// Processes

/** A child process whose exit can be awaited and whose stderr is kept for error messages. */
class Child {
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  readonly exit: Promise<number | null>;
  readonly identity: ProcessIdentity | undefined;
  private readonly child: ChildProcess;
  private done = false;

  constructor(
    readonly name: string,
    cmd: string,
    args: readonly string[],
    input?: string,
  ) {
    this.child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    if (input !== undefined) this.child.stdin?.end(input);
    const { stdout, stderr } = this.child;
    if (stdout === null || stderr === null) throw new Error('stdio pipes missing');
    readline.createInterface({ input: stdout }).on('line', (l) => this.stdout.push(l));
    readline.createInterface({ input: stderr }).on('line', (l) => this.stderr.push(l));
    this.exit = new Promise((resolve) => {
      this.child.once('error', (e) => {
        this.stderr.push(`spawn error: ${e.message}`);
        this.done = true;
        resolve(null);
      });
      this.child.once('close', (code) => {
        this.done = true;
        resolve(code);
      });
    });
    this.identity = this.child.pid === undefined ? undefined : janitor.trackProcess(this.child.pid, name);
  }

  get running(): boolean {
    return !this.done;
  }

  /** SIGKILL by PID (never by name), then wait for it. */
  async kill(): Promise<void> {
    if (this.running && this.child.pid !== undefined) {
      try {
        process.kill(this.child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await this.exit;
    if (this.identity) janitor.untrackProcess(this.identity);
  }
}

function tmpdir(t: TestContext, prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  janitor.trackPath(d);
  t.after(() => {
    fs.rmSync(d, { recursive: true, force: true });
    janitor.untrackPath(d);
  });
  return d;
}

// ---------------------------------------------------------------------------------------
// Three VMs on a private bridge

interface Seen {
  line: string;
  /** ms after the cluster was created when the poller first saw the line */
  ms: number;
}

/** Three VMs (one per IP) on bridge br0 of a private network namespace; each VM is started on demand. */
class MpiCluster {
  private readonly net: PrivateNetwork;
  private readonly img = imageDir();
  private readonly consoles: string[];
  private readonly vms: Array<Child | undefined>;
  /** ms (cluster time) at which each VM's QEMU was started */
  readonly startedAt: number[];
  private readonly seen: Seen[][];
  private readonly created = Date.now();
  private readonly poller: NodeJS.Timeout;
  private disposed = false;

  /** `programArgs` go to vccr-mpi-check (through node 0's mpirun). Torn down after the test. */
  constructor(
    t: TestContext,
    private readonly programArgs: readonly string[],
  ) {
    const dir = tmpdir(t, 'vccr-mpi-test-');
    this.net = PrivateNetwork.create(IPS.length);
    t.after(() => this.dispose());
    this.consoles = IPS.map((_, i) => path.join(dir, `console${i}.log`));
    this.vms = IPS.map(() => undefined);
    this.startedAt = IPS.map(() => 0);
    this.seen = IPS.map(() => []);
    this.poller = setInterval(() => this.poll(), 100);
  }

  get ms(): number {
    return Date.now() - this.created;
  }

  start(i: number): void {
    const ip = IPS[i];
    const tap = this.net.taps[i];
    const consolePath = this.consoles[i];
    if (ip === undefined || tap === undefined || consolePath === undefined) throw new Error(`no vm${i}`);
    const args = ['--node', `${i}`, ...IPS.flatMap((h) => ['--host', h]), '--', ...this.programArgs];
    this.startedAt[i] = this.ms;
    this.vms[i] = new Child(`qemu mpi vm${i}`, 'nsenter', [
      `--net=/run/netns/${this.net.name}`,
      '--',
      'qemu-system-x86_64',
      ...['-accel', 'tcg', '-m', `${VM_MEMORY_MIB}`, '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot'],
      ...['-kernel', path.join(this.img, 'vmlinuz'), '-initrd', path.join(this.img, 'initrd-mpi.img')],
      ...['-append', `console=ttyS0 quiet panic=-1 vccr.ip=${ip}/24 vccr.run=mpi vccr.args=${args.join(',')}`],
      ...['-serial', `file:${consolePath}`],
      ...['-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`],
      ...['-device', `virtio-net-pci,netdev=n0,mac=52:54:00:00:00:0${i + 1}`],
    ]);
  }

  lines(vm: number): string[] {
    this.poll();
    return (this.seen[vm] ?? []).map((s) => s.line);
  }

  /** The first console line of `vm` satisfying `pred`, and when it appeared. */
  async waitFor(vm: number, what: string, pred: (line: string) => boolean): Promise<Seen> {
    const deadline = this.created + CLUSTER_WAIT_MS;
    for (;;) {
      this.poll();
      const hit = (this.seen[vm] ?? []).find((s) => pred(s.line));
      if (hit) return hit;
      const dead = this.vms.findIndex((v) => v !== undefined && !v.running);
      if (dead >= 0 || Date.now() > deadline) {
        const why = dead >= 0 ? `QEMU of vm${dead} exited` : `timed out after ${CLUSTER_WAIT_MS} ms`;
        throw new Error(`waiting for ${what} on vm${vm}: ${why}\n${this.dump()}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  dump(): string {
    return this.consoles
      .map((_, i) => [`--- vm${i} console`, ...this.lines(i).slice(-40), `--- vm${i} qemu stderr`, ...(this.vms[i]?.stderr ?? [])].join('\n'))
      .join('\n');
  }

  private async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    clearInterval(this.poller);
    await Promise.all(this.vms.map((vm) => vm?.kill()));
    this.net.destroy();
  }

  private poll(): void {
    const now = this.ms;
    this.consoles.forEach((file, i) => {
      let text: string;
      try {
        text = fs.readFileSync(file, 'latin1');
      } catch {
        return; // QEMU has not created it yet
      }
      const seen = this.seen[i] ?? [];
      // Complete lines past those already seen are new (the last element is a partial line).
      const all = text.replace(/\r/g, '').split('\n');
      all.pop();
      for (let n = seen.length; n < all.length; n++) seen.push({ line: all[n] ?? '', ms: now });
    });
  }
}

const READY = 'VCCR-GUEST-READY';

/** Waits for VM i's READY and its vccr-rshd; returns its boot time (QEMU start -> READY, ms). */
async function waitBooted(c: MpiCluster, i: number): Promise<number> {
  const ready = await c.waitFor(i, READY, (l) => l === READY);
  await c.waitFor(i, 'MPI NODE READY', (l) => l === `MPI NODE READY node=${i} name=mpi${i} ip=${IPS[i]}`);
  await c.waitFor(i, 'RSHD READY', (l) => l === 'RSHD READY port=2222');
  return ready.ms - (c.startedAt[i] ?? 0);
}

/** Starts all three VMs at once; returns the slowest boot time. */
async function bootAll(c: MpiCluster): Promise<number> {
  IPS.forEach((_, i) => c.start(i));
  const times = await Promise.all(IPS.map((_, i) => waitBooted(c, i)));
  return Math.max(...times);
}

// ---------------------------------------------------------------------------------------
// The image

function cpioList(file: string): Set<string> {
  const r = spawnSync('sh', ['-c', 'gzip -dc "$1" | cpio -t --quiet', 'list', file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr);
  return new Set(r.stdout.split('\n').filter((l) => l !== ''));
}

test('image: initrd-mpi.img is initrd.img plus Open MPI; initrd.img has no MPI files', (t) => {
  const img = imageDir();
  const small = cpioList(path.join(img, 'initrd.img'));
  const mpi = cpioList(path.join(img, 'initrd-mpi.img'));
  assert.deepEqual([...small].filter((f) => !mpi.has(f)), [], 'every file of initrd.img is in initrd-mpi.img');
  for (const f of [
    'bin/vccr-mpi',
    'bin/vccr-mpi-check',
    'bin/vccr-rsh',
    'bin/vccr-rshd',
    'usr/bin/orterun',
    'usr/bin/orted',
    'usr/bin/mpirun',
    'lib64/ld-linux-x86-64.so.2',
    'usr/lib/x86_64-linux-gnu/libmpi.so.40',
    'usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3/mca_btl_tcp.so',
    'usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3/mca_plm_rsh.so',
    'usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3/mca_pmix_ext3x.so',
    'usr/share/openmpi/help-mpi-runtime.txt',
    'etc/openmpi/openmpi-mca-params.conf',
  ]) {
    assert.ok(mpi.has(f), `initrd-mpi.img has ${f}`);
  }
  assert.deepEqual([...small].filter((f) => /mpi|orte|^usr\/lib|^lib64/.test(f)), [], 'initrd.img stays MPI-free');
  for (const f of ['initrd.img', 'initrd-mpi.img']) t.diagnostic(`${f}: ${Math.round(fs.statSync(path.join(img, f)).size / 1024)} KiB`);
  const meta: unknown = JSON.parse(fs.readFileSync(path.join(img, 'image.json'), 'utf8'));
  assert.ok(typeof meta === 'object' && meta !== null && 'mpi' in meta, 'image.json has an mpi section');
});

// ---------------------------------------------------------------------------------------
// vccr-rsh / vccr-rshd on the host (127.0.0.1)

test('rsh: vccr-rsh/vccr-rshd run an Open MPI style command line, relay output, stdin and exit status', async (t) => {
  const bin = (n: string): string => path.join(imageDir(), 'bin', n);
  const home = tmpdir(t, 'vccr-rshd-home-');
  const rshd = new Child('vccr-rshd', 'env', [`HOME=${home}`, bin('vccr-rshd'), '--port', '0', '--bind', '127.0.0.1']);
  t.after(() => rshd.kill());
  const deadline = Date.now() + 10_000;
  while (rshd.stdout.length === 0 && rshd.running && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const m = /^RSHD READY port=(\d+)$/.exec(rshd.stdout[0] ?? '');
  assert.ok(m, `rshd: ${rshd.stdout.join('\n')} ${rshd.stderr.join('\n')}`);
  const port = m[1] ?? '';

  const rsh = async (args: readonly string[], input?: string): Promise<{ code: number | null; out: string[]; err: string[] }> => {
    const c = new Child('vccr-rsh', bin('vccr-rsh'), args, input);
    const code = await c.exit;
    if (c.identity) janitor.untrackProcess(c.identity);
    return { code, out: c.stdout, err: c.stderr };
  };

  // What Open MPI's rsh launcher sends for a bourne-shell node: a subshell with quoted ';'.
  const ompi = await rsh(['-x', '127.0.0.1', '-p', port, '(', 'test', '!', '-r', './.profile', '||', '.', './.profile;', 'echo', '"uri=1.0;tcp://x:1"', 'pwd=$(pwd)', ')']);
  assert.deepEqual(ompi, { code: 0, out: [`uri=1.0;tcp://x:1 pwd=${home}`], err: [] });
  // Exit status, stderr, user@host and -p before the host.
  assert.deepEqual(await rsh(['-q', '-p', port, 'root@127.0.0.1', 'echo out; echo err >&2; exit 7']), { code: 7, out: ['out'], err: ['err'] });
  // stdin is forwarded (and not with -n); a signal becomes 128+n.
  assert.deepEqual(await rsh(['-p', port, '127.0.0.1', 'cat'], 'line1\nline2\n'), { code: 0, out: ['line1', 'line2'], err: [] });
  assert.deepEqual(await rsh(['-n', '-p', port, '127.0.0.1', 'cat'], 'ignored\n'), { code: 0, out: [], err: [] });
  assert.equal((await rsh(['-p', port, '127.0.0.1', 'kill -9 $$'])).code, 137);
  // A host nobody listens on: ssh's convention, 255 and a message.
  const refused = await rsh(['-p', '1', '127.0.0.1', 'true']);
  assert.equal(refused.code, 255);
  assert.match(refused.err.join('\n'), /^vccr-rsh: connect to 127\.0\.0\.1: Connection refused$/);
});

// ---------------------------------------------------------------------------------------
// Three VMs

test('mpi: a 3-VM Open MPI job on a private bridge runs to MPI RESULT OK with the expected checksum', async (t) => {
  const iterations = 10;
  const c = new MpiCluster(t, ['--iterations', `${iterations}`, '--sleep-ms', '200']);
  // Node 0 boots first and must wait for its peers (they boot only once it is up and waiting).
  c.start(0);
  const boot0 = await waitBooted(c, 0);
  c.start(1);
  c.start(2);
  const bootPeers = await Promise.all([1, 2].map((i) => waitBooted(c, i)));
  const launch = await c.waitFor(0, 'MPI LAUNCH', (l) => l.startsWith('MPI LAUNCH'));
  const start = await c.waitFor(0, 'MPI START', (l) => l.startsWith('MPI START'));
  const result = await c.waitFor(0, 'MPI RESULT', (l) => l.startsWith('MPI RESULT'));
  const exit = await c.waitFor(0, 'workload exit', (l) => l.startsWith('VCCR-WORKLOAD-EXIT'));
  t.diagnostic(`boot (QEMU start -> ${READY}): node 0 alone ${boot0} ms; nodes 1 and 2 together ${bootPeers.join(' / ')} ms`);
  t.diagnostic(`MPI LAUNCH -> MPI START (mpirun starting orted via vccr-rsh, MPI_Init): ${start.ms - launch.ms} ms`);
  t.diagnostic(`job (MPI START -> MPI RESULT, ${iterations} iterations x 200 ms sleep): ${result.ms - start.ms} ms`);
  t.diagnostic(`first QEMU start -> VCCR-WORKLOAD-EXIT: ${exit.ms} ms`);

  const lines = c.lines(0);
  const from = lines.indexOf(launch.line);
  const mpiLines = lines.slice(from).filter((l) => l.startsWith('MPI ') || l.startsWith('VCCR-'));
  assert.deepEqual(
    mpiLines,
    [
      'MPI LAUNCH np=3 hosts=mpi0,mpi1,mpi2',
      // each rank ran on its own VM, in order
      `MPI START ranks=3 iterations=${iterations} sleep-ms=200 block-words=4096 hosts=mpi0,mpi1,mpi2`,
      ...Array.from({ length: iterations }, (_, k) => `MPI ITER ${k + 1}/${iterations} ok`),
      `MPI RESULT OK checksum=${expectedChecksum(3, iterations, 4096)}`,
      'VCCR-WORKLOAD-EXIT code=0',
    ],
    c.dump(),
  );
  assert.deepEqual(
    lines.filter((l) => l.startsWith('MPI PEER UP')),
    ['MPI PEER UP node=0', 'MPI PEER UP node=1', 'MPI PEER UP node=2'],
  );
  const peer1 = await c.waitFor(0, 'PEER UP 1', (l) => l === 'MPI PEER UP node=1');
  assert.ok(peer1.ms >= (c.startedAt[1] ?? 0), 'node 0 waited for node 1, which started later');
  for (const i of [1, 2]) {
    assert.deepEqual(c.lines(i).filter((l) => l.startsWith('MPI ') || l.startsWith('VCCR-WORKLOAD-EXIT')), [`MPI NODE READY node=${i} name=mpi${i} ip=${IPS[i]}`]);
  }
});

const failures = [
  {
    kind: 'sum',
    // rank 2 adds 1 to its allreduce contribution in iteration 3: every rank sees the wrong sum
    error: /^MPI ERROR rank=0 iter=3 reason=allreduce-sum expected=57,9,3 got=58,9,3$/,
    reason: 'allreduce-sum',
  },
  {
    kind: 'ring',
    // rank 1 sends a block with one wrong payload word (valid checksum): rank 2 detects it
    error: /^MPI ERROR rank=2 iter=3 reason=ring-payload from=1 word=2048 expected=[0-9a-f]{16} got=[0-9a-f]{16}$/,
    reason: 'ring-payload',
  },
] as const;

for (const f of failures) {
  test(`mpi: the self-check fails on a wrong value injected on one rank (${f.kind})`, async (t) => {
    const rank = f.kind === 'sum' ? '2' : '1';
    const c = new MpiCluster(t, ['--iterations', '6', '--sleep-ms', '100', '--inject-error-at', '3', '--inject-rank', rank, '--inject-kind', f.kind]);
    await bootAll(c);
    const result = await c.waitFor(0, 'MPI RESULT', (l) => l.startsWith('MPI RESULT'));
    const exit = await c.waitFor(0, 'workload exit', (l) => l.startsWith('VCCR-WORKLOAD-EXIT'));
    t.diagnostic(`QEMU start -> VCCR-WORKLOAD-EXIT: ${exit.ms} ms`);
    const lines = c.lines(0);
    assert.equal(result.line, `MPI RESULT FAIL reason=${f.reason} iter=3`, c.dump());
    assert.equal(exit.line, 'VCCR-WORKLOAD-EXIT code=2', c.dump());
    assert.deepEqual(lines.filter((l) => l.startsWith('MPI ITER')), ['MPI ITER 1/6 ok', 'MPI ITER 2/6 ok']);
    assert.deepEqual(lines.filter((l) => l.startsWith('MPI ERROR')).map((l) => f.error.test(l)), [true], c.dump());
    assert.ok(!lines.some((l) => l.startsWith('MPI RESULT OK')));
  });
}
