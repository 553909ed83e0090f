// A complete VCCR installation on this one machine, for tests, the demo and benchmarks: the real
// Temporal dev server, a controller worker and several host workers as separate processes (so they can
// be killed and restarted like real ones), a private network namespace for the VMs, a checkpoint
// store, and a VccrClient. Everything it starts is recorded with the janitor and ended by stop().
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { VccrClient } from '../client';
import { isAlive, sleep, terminate, type ProcessIdentity } from '../node/proc';
import type { ClusterSpecInput } from '../common/spec';
import type { HooksConfig } from '../activities/test-hooks';
import { DevServer } from './dev-server';
import { janitor, killRecordedVms } from './janitor';
import { PrivateNetwork } from './netns';

export const REPO_ROOT = resolve(__dirname, '..', '..');
const DIST = resolve(__dirname, '..');

export function guestImageDir(): string {
  const current = join(REPO_ROOT, '.cache', 'guest', 'current');
  if (!existsSync(join(current, 'image.json'))) throw new Error(`no guest image at ${current}: run \`bash scripts/setup.sh\``);
  return realpathSync(current);
}

export class WorkerProcess {
  constructor(
    readonly kind: 'controller' | 'host',
    readonly name: string,
    readonly id: ProcessIdentity,
    readonly logFile: string,
  ) {}

  get alive(): boolean {
    return isAlive(this.id);
  }

  /** SIGKILL: the crash the fault suite injects. */
  async kill(): Promise<void> {
    await terminate(this.id, 'SIGKILL');
    janitor.untrackProcess(this.id);
  }

  async stop(): Promise<void> {
    await terminate(this.id, 'SIGTERM', 10_000);
    janitor.untrackProcess(this.id);
  }
}

export interface TestBedOptions {
  /** Host worker ids to start (e.g. ['a', 'b']). */
  hosts: string[];
  /** Tap devices to create in the private network (one per VM NIC); 0 = no network namespace. */
  taps?: number;
  /** Web UI port for the dev server (the demo shows it); none by default. */
  uiPort?: number;
  /** Keep the folder for inspection after stop (the demo). */
  keepDir?: boolean;
  /** Parent of the bed's folder (default /tmp: paths must stay short for QMP sockets). */
  parentDir?: string;
  /** Give every worker a hooks file (activities/test-hooks.ts) that setHooks() writes: race tests only. */
  testHooks?: boolean;
}

export class TestBed {
  readonly controllers: WorkerProcess[] = [];
  readonly hostWorkers = new Map<string, WorkerProcess>();
  private client: Client | undefined;

  private constructor(
    readonly dir: string,
    readonly server: DevServer,
    readonly network: PrivateNetwork | undefined,
    readonly vccr: VccrClient,
    private readonly options: TestBedOptions,
  ) {}

  static async start(options: TestBedOptions): Promise<TestBed> {
    const dir = mkdtempSync(join(options.parentDir ?? '/tmp', 'vccr-'));
    janitor.trackPath(dir);
    let server: DevServer | undefined;
    let network: PrivateNetwork | undefined;
    try {
      server = await DevServer.start({
        dbFile: join(dir, 'temporal.db'),
        logFile: join(dir, 'temporal.log'),
        ...(options.uiPort ? { uiPort: options.uiPort } : {}),
      });
      network = options.taps ? PrivateNetwork.create(options.taps) : undefined;
      const vccr = await VccrClient.connect({ address: server.address });
      const bed = new TestBed(dir, server, network, vccr, options);
      await bed.startController();
      await Promise.all(options.hosts.map((h) => bed.startHost(h)));
      return bed;
    } catch (err) {
      network?.destroy();
      await server?.stop();
      rmSync(dir, { recursive: true, force: true });
      janitor.untrackPath(dir);
      throw err;
    }
  }

  get store(): string {
    return join(this.dir, 'store');
  }

  hostStateDir(host: string): string {
    return join(this.dir, 'hosts', host);
  }

  /** A raw Temporal client (for things the VccrClient does not do, like describing workflows). */
  async temporal(): Promise<Client> {
    if (!this.client) this.client = new Client({ connection: await Connection.connect({ address: this.server.address }) });
    return this.client;
  }

  /** The hooks file of the controller workers or of one host's worker (with the `testHooks` option). */
  hooksFile(target: 'controller' | string): string {
    return join(this.dir, `hooks-${target}.json`);
  }

  /** Sets (replaces) the test hooks of the controllers or of a host's worker and its pause guard. */
  setHooks(target: 'controller' | string, hooks: HooksConfig): void {
    if (!this.options.testHooks) throw new Error('this bed was started without testHooks');
    writeFileSync(this.hooksFile(target), JSON.stringify(hooks));
  }

  /** Removes every hook (and the memory of hooks that fired once). */
  clearHooks(): void {
    for (const f of readdirSync(this.dir)) if (f.startsWith('hooks-')) rmSync(join(this.dir, f), { force: true });
  }

  /** Hook points reached since the hooks were last cleared, in order. */
  hooksReached(target: 'controller' | string): Array<{ point: string; vm?: string; pid: number; at: number }> {
    try {
      return readFileSync(`${this.hooksFile(target)}.reached`, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { point: string; vm?: string; pid: number; at: number });
    } catch {
      return [];
    }
  }

  private async spawnWorker(kind: 'controller' | 'host', name: string, args: string[], readyText: string, launcher: string[] = []): Promise<WorkerProcess> {
    const logFile = join(this.dir, `${kind}-${name}.log`);
    const log = openSync(logFile, 'a');
    const hooks = this.options.testHooks ? { VCCR_TEST_HOOKS: this.hooksFile(kind === 'controller' ? 'controller' : name) } : {};
    const argv = [...launcher, process.execPath, join(DIST, 'workers', `${kind}.js`), ...args];
    const child = spawn(argv[0] ?? process.execPath, argv.slice(1), {
      stdio: ['ignore', log, log],
      // Workers log to their own files at info level at least: readiness is read from there.
      env: { ...process.env, ...hooks, TEMPORAL_ADDRESS: this.server.address, VCCR_LOG_LEVEL: process.env.VCCR_WORKER_LOG_LEVEL ?? 'info' },
    });
    closeSync(log);
    child.unref();
    const id = child.pid === undefined ? undefined : janitor.trackProcess(child.pid, `${kind} worker ${name}`);
    if (!id) throw new Error(`${kind} worker ${name} did not start; see ${logFile}`);
    const deadline = Date.now() + 60_000;
    while (!readFileSync(logFile, 'utf8').includes(readyText)) {
      if (!isAlive(id)) throw new Error(`${kind} worker ${name} exited; log:\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
      if (Date.now() > deadline) throw new Error(`${kind} worker ${name} not ready after 60 s; see ${logFile}`);
      await sleep(50);
    }
    return new WorkerProcess(kind, name, id, logFile);
  }

  async startController(): Promise<WorkerProcess> {
    const n = String(this.controllers.length + 1);
    const worker = await this.spawnWorker('controller', n, [], 'controller worker running');
    this.controllers.push(worker);
    return worker;
  }

  /**
   * Starts (or restarts) the worker of host `id`; its state folder is kept across restarts. `launcher` runs
   * it through another program (e.g. setpriv with fewer capabilities).
   */
  async startHost(id: string, launcher: string[] = []): Promise<WorkerProcess> {
    const stateDir = this.hostStateDir(id);
    janitor.trackVmState(stateDir);
    const worker = await this.spawnWorker('host', id, ['--host', id, '--state-dir', stateDir], 'host worker running', launcher);
    this.hostWorkers.set(id, worker);
    return worker;
  }

  /** Every VM process a host has recorded, ended with SIGKILL (a crash of the whole cluster). */
  async killAllVms(): Promise<string[]> {
    const killed: string[] = [];
    for (const host of this.allHosts()) killed.push(...(await killRecordedVms(this.hostStateDir(host))));
    return killed;
  }

  /** The VM record a host worker keeps (pid, sockets, console log). */
  vmRecord(host: string, cluster: string, vm: string): { pid: number; startTime: string; consoleLog: string; qmpSocket: string; guardSocket: string } {
    return JSON.parse(readFileSync(join(this.hostStateDir(host), cluster, vm, 'vm.json'), 'utf8')) as {
      pid: number;
      startTime: string;
      consoleLog: string;
      qmpSocket: string;
      guardSocket: string;
    };
  }

  consoleLog(host: string, cluster: string, vm: string): string {
    return join(this.hostStateDir(host), cluster, vm, 'console.log');
  }

  /** The bed's hosts and any started later with startHost. */
  private allHosts(): string[] {
    return [...new Set([...this.options.hosts, ...this.hostWorkers.keys()])];
  }

  async stop(): Promise<void> {
    for (const host of this.allHosts()) {
      await killRecordedVms(this.hostStateDir(host));
      janitor.untrackVmState(this.hostStateDir(host));
    }
    await this.vccr.close().catch(() => undefined);
    await this.client?.connection.close().catch(() => undefined);
    for (const w of [...this.hostWorkers.values(), ...this.controllers]) await w.kill();
    await this.server.stop();
    this.network?.destroy();
    if (!this.options.keepDir) {
      rmSync(this.dir, { recursive: true, force: true });
      janitor.untrackPath(this.dir);
    }
  }
}

export interface RingVm {
  name: string;
  host: string;
}

export interface RingOptions {
  delayMs?: number;
  stallSec?: number;
  memoryMiB?: number;
  pauseBoundSeconds?: number;
  disks?: Record<string, string>;
}

/**
 * A cluster spec for the token ring: VM i gets 10.77.0.(11+i)/24 on tap i of the bed's network and runs
 * ring node i, passing the token to VM i+1.
 */
export function ringSpec(bed: TestBed, cluster: string, vms: RingVm[], options: RingOptions = {}): ClusterSpecInput {
  if (!bed.network) throw new Error('the ring needs a bed with taps');
  const network = bed.network;
  return ringCluster({ cluster, store: bed.store, image: guestImageDir(), vms, tap: (i) => network.taps[i] ?? `tap${i}`, netns: network.name }, options);
}

/** The token ring on any network: VM i on tap `tap(i)` (in `netns` if given), booted from `image`. */
export function ringCluster(
  where: { cluster: string; store: string; image: string; vms: RingVm[]; tap: (i: number) => string; netns?: string },
  options: RingOptions = {},
): ClusterSpecInput {
  const { cluster, vms, image } = where;
  const n = vms.length;
  const ip = (i: number) => `10.77.0.${11 + i}`;
  const hosts = Object.fromEntries([...new Set(vms.map((v) => v.host))].map((h) => [h, {}]));
  return {
    cluster,
    store: where.store,
    pauseBoundSeconds: options.pauseBoundSeconds ?? 60,
    hosts,
    vms: vms.map((vm, i) => {
      const args = ['--id', i, '--nodes', n, '--listen', 7000, '--next', `${ip((i + 1) % n)}:7000`, '--delay-ms', options.delayMs ?? 20, '--stall-sec', options.stallSec ?? 20];
      return {
        name: vm.name,
        host: vm.host,
        memoryMiB: options.memoryMiB ?? 128,
        boot: {
          kernel: join(image, 'vmlinuz'),
          initrd: join(image, 'initrd.img'),
          append: `console=ttyS0 quiet panic=-1 init_on_free=1 vccr.hostname=${vm.name} vccr.ip=${ip(i)}/24 vccr.run=ring vccr.args=${args.join(',')}`,
        },
        nics: [{ id: 'net0', tap: where.tap(i) }],
        ...(where.netns ? { netns: where.netns } : {}),
      };
    }),
  };
}

/**
 * A cluster spec of idle guests (no network), each VM with a disk on one shared 8 MiB base image: the
 * smallest cluster that still goes through every phase (the disk makes the freeze phase real).
 */
export function idleSpec(bed: TestBed, cluster: string, vms: RingVm[], options: { memoryMiB?: number } = {}): ClusterSpecInput {
  const image = guestImageDir();
  const disk = join(bed.dir, 'idle-disk-base.raw');
  if (!existsSync(disk)) execFileSync('qemu-img', ['create', '-q', '-f', 'raw', disk, '8M']);
  return {
    cluster,
    store: bed.store,
    hosts: Object.fromEntries([...new Set(vms.map((v) => v.host))].map((h) => [h, {}])),
    vms: vms.map((vm) => ({
      name: vm.name,
      host: vm.host,
      memoryMiB: options.memoryMiB ?? 64,
      boot: { kernel: join(image, 'vmlinuz'), initrd: join(image, 'initrd.img'), append: `console=ttyS0 quiet panic=-1 vccr.hostname=${vm.name} vccr.run=idle` },
      disks: [{ id: 'data', image: disk, format: 'raw' as const }],
    })),
  };
}
