// A lab of "machines" on this one computer, for the multi-host test. Each machine has
//   - its own network namespace, reaching the others only over a veth link into a switch namespace: the
//     control network 10.213.0.0/24 (the switch itself is 10.213.0.1, where the Temporal server listens)
//     and, for hosts, a VM fabric that joins every host's VM bridge (tap devices live in the machine);
//   - its own mount namespace: overlays on /etc, /opt, /usr/local and /var (what an install writes stays
//     in the machine), a private /tmp and /srv, and the shared store bind-mounted at the agreed path, as
//     an NFS mount would be;
//   - its own hostname.
// Nothing here sends a packet anywhere: addresses exist only inside the namespaces the lab creates.
// Everything is recorded with the janitor and removed by destroy().
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { closeSync, cpSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { janitor } from './janitor';
import type { ProcessIdentity } from '../node/proc';

export const SWITCH_IP = '10.213.0.1';
/** Where every machine sees the shared checkpoint store. */
export const STORE = '/srv/vccr/store';
const LAB_STORE = '.lab-store';
const OVERLAID = ['/etc', '/opt', '/usr/local', '/var'];

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim()}`);
}

export interface MachineOptions {
  name: string;
  /** Tap devices to create (tap0..tap<n-1>) on the machine's VM bridge; hosts only. */
  taps?: number;
}

export class Machine {
  constructor(
    readonly name: string,
    readonly netns: string,
    readonly ip: string,
    /** The machine's files, outside: overlay upper layers, its /tmp and /srv. */
    readonly dir: string,
    private readonly nsDir: string,
  ) {}

  private get enter(): string[] {
    return [`--net=/run/netns/${this.netns}`, `--mount=${join(this.nsDir, `${this.name}.mnt`)}`, `--uts=${join(this.nsDir, `${this.name}.uts`)}`];
  }

  /** Runs a command inside the machine (as root, in /tmp unless `cwd`), waiting for it. */
  run(argv: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): SpawnSyncReturns<string> {
    // env -C, not nsenter --wd: nsenter resolves --wd before it enters the mount namespace. stdin is not a
    // socket (Node's default pipe): bash would take that for rshd/sshd and read the real root's bashrc.
    return spawnSync('nsenter', [...this.enter, '--', 'env', '-C', options.cwd ?? '/tmp', ...argv], {
      encoding: 'utf8',
      env: options.env ?? { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' },
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      ...(options.input !== undefined ? { input: options.input } : {}),
      timeout: options.timeoutMs ?? 120_000,
    });
  }

  /** Like run, but throws with the output unless the command succeeds. */
  must(argv: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
    const r = this.run(argv, options);
    if (r.status !== 0) throw new Error(`[${this.name}] ${argv.join(' ')} exited ${r.status ?? r.signal}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /** Starts a long-running process inside the machine; its output goes to `logFile` (outside). */
  spawn(argv: string[], env: Record<string, string>, logFile: string, what: string): ProcessIdentity {
    const log = openSync(logFile, 'a');
    const child = spawn('nsenter', [...this.enter, '--', 'env', '-C', '/', ...argv], { stdio: ['ignore', log, log], env, detached: true });
    closeSync(log);
    child.unref();
    const id = child.pid === undefined ? undefined : janitor.trackProcess(child.pid, `${what} in ${this.name}`);
    if (!id) throw new Error(`${what} did not start in ${this.name}; see ${logFile}`);
    return id;
  }

  /** Where a path inside the machine lives outside, for paths on an overlay (/var, /etc, ...) or /tmp, /srv. */
  outside(path: string): string {
    for (const top of [...OVERLAID, '/tmp', '/srv']) {
      if (path === top || path.startsWith(`${top}/`)) return join(this.dir, OVERLAID.includes(top) ? join('ovl', top.slice(1).replace(/\//g, '_'), 'up') : top.slice(1), path.slice(top.length));
    }
    throw new Error(`${path} is not on one of ${this.name}'s own file systems`);
  }
}

export class Lab {
  private readonly machines = new Map<string, Machine>();

  private constructor(
    readonly dir: string,
    readonly switchNs: string,
    private readonly nsDir: string,
    /** The shared checkpoint store's real folder (bind-mounted into machines). */
    readonly storeSource: string,
  ) {}

  /** The switch namespace with the control bridge (10.213.0.1/24) and the VM fabric bridge. */
  static create(dir: string): Lab {
    const id = randomBytes(3).toString('hex');
    const switchNs = `vccr-mh-${id}-sw`;
    const nsDir = join(dir, 'ns');
    mkdirSync(nsDir, { recursive: true });
    mkdirSync(join(dir, 'store'), { recursive: true, mode: 0o700 });
    // Persistent mount namespaces are bound to files, which must sit on a private mount.
    janitor.trackMount(nsDir);
    sh('mount', ['--bind', nsDir, nsDir]);
    sh('mount', ['--make-private', nsDir]);
    janitor.trackNetns(switchNs);
    sh('ip', ['netns', 'add', switchNs]);
    for (const args of [
      ['link', 'set', 'lo', 'up'],
      ['link', 'add', 'br-ctl', 'type', 'bridge'],
      ['addr', 'add', `${SWITCH_IP}/24`, 'dev', 'br-ctl'],
      ['link', 'set', 'br-ctl', 'up'],
      ['link', 'add', 'br-vm', 'type', 'bridge'],
      ['link', 'set', 'br-vm', 'up'],
    ]) sh('ip', ['-n', switchNs, ...args]);
    return new Lab(dir, switchNs, nsDir, join(dir, 'store'));
  }

  machine(name: string): Machine {
    const m = this.machines.get(name);
    if (!m) throw new Error(`no machine ${name} in the lab`);
    return m;
  }

  /** A new machine on the control network (and, with taps, on the VM fabric). */
  addMachine(options: MachineOptions): Machine {
    const { name } = options;
    const index = this.machines.size;
    const netns = `${this.switchNs.replace(/-sw$/, '')}-${name}`;
    const machine = new Machine(name, netns, `10.213.0.${10 + index}`, join(this.dir, name), this.nsDir);
    this.machines.set(name, machine);
    janitor.trackNetns(netns);
    sh('ip', ['netns', 'add', netns]);
    const inSwitch = (...args: string[]) => sh('ip', ['-n', this.switchNs, ...args]);
    const inMachine = (...args: string[]) => sh('ip', ['-n', netns, ...args]);
    inMachine('link', 'set', 'lo', 'up');
    inSwitch('link', 'add', `ctl-${name}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns);
    inSwitch('link', 'set', `ctl-${name}`, 'master', 'br-ctl', 'up');
    inMachine('addr', 'add', `${machine.ip}/24`, 'dev', 'eth0');
    inMachine('link', 'set', 'eth0', 'up');
    if (options.taps) {
      inSwitch('link', 'add', `vm-${name}`, 'type', 'veth', 'peer', 'name', 'vmnet', 'netns', netns);
      inSwitch('link', 'set', `vm-${name}`, 'master', 'br-vm', 'up');
      inMachine('link', 'add', 'br0', 'type', 'bridge');
      inMachine('link', 'set', 'vmnet', 'master', 'br0', 'up');
      inMachine('link', 'set', 'br0', 'up');
      for (let i = 0; i < options.taps; i++) this.addTap(machine, `tap${i}`);
    }
    this.mountNamespace(machine);
    return machine;
  }

  addTap(machine: Machine, tap: string): void {
    sh('ip', ['-n', machine.netns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
    sh('ip', ['-n', machine.netns, 'link', 'set', tap, 'master', 'br0', 'up']);
  }

  /** The machine's own mount namespace and hostname: overlays, private /tmp and /srv, the store at STORE. */
  private mountNamespace(m: Machine): void {
    const mnt = join(this.nsDir, `${m.name}.mnt`);
    const uts = join(this.nsDir, `${m.name}.uts`);
    for (const f of [mnt, uts]) {
      writeFileSync(f, '');
      janitor.trackMount(f);
    }
    sh('unshare', [`--mount=${mnt}`, `--uts=${uts}`, '--propagation', 'private', 'hostname', m.name]);
    const steps: string[][] = [['mount', '-t', 'sysfs', 'sysfs', '/sys']];
    for (const top of OVERLAID) {
      const base = join(m.dir, 'ovl', top.slice(1).replace(/\//g, '_'));
      mkdirSync(join(base, 'up'), { recursive: true });
      mkdirSync(join(base, 'work'), { recursive: true });
      steps.push(['mount', '-t', 'overlay', 'overlay', '-o', `lowerdir=${top},upperdir=${base}/up,workdir=${base}/work`, top]);
    }
    for (const d of ['srv/vccr/store', 'srv/vccr/images', `tmp/${LAB_STORE}`]) mkdirSync(join(m.dir, d), { recursive: true });
    // The sources of these binds live under the real /tmp, so /tmp comes last. The store is also kept at
    // /tmp/.lab-store (test scaffolding nothing else looks at) so a test can unmount and remount it.
    steps.push(['mount', '--bind', this.storeSource, join(m.dir, 'tmp', LAB_STORE)]);
    steps.push(['mount', '--bind', join(m.dir, 'srv'), '/srv']);
    steps.push(['mount', '--bind', this.storeSource, STORE]);
    steps.push(['mount', '--rbind', join(m.dir, 'tmp'), '/tmp']);
    for (const step of steps) m.must(step, { cwd: '/' });
  }

  /** The shared store is no longer mounted in `m` (what was under the mount point shows: an empty folder). */
  unmountStore(m: Machine): void {
    m.must(['umount', STORE], { cwd: '/' });
  }

  mountStore(m: Machine): void {
    m.must(['mount', '--bind', `/tmp/${LAB_STORE}`, STORE], { cwd: '/' });
  }

  /**
   * Makes the real folder `source` appear read-only at `target` in every machine (e.g. the guest images):
   * bound where the machine can see it; copied in where it cannot — under the real /tmp (a clone of the
   * repository in /tmp), which a machine's own /tmp hides.
   */
  shareReadOnly(source: string, target: string): void {
    const visible = !underTmp(source);
    for (const m of this.machines.values()) {
      mkdirSync(m.outside(target), { recursive: true });
      if (!visible) cpSync(source, m.outside(target), { recursive: true });
      m.must(['mount', '--bind', visible ? source : target, target], { cwd: '/' });
      m.must(['mount', '-o', 'remount,bind,ro', target], { cwd: '/' });
    }
  }

  /** Hides a real folder from every machine (an empty read-only tmpfs over it). */
  hide(path: string): void {
    // Under the real /tmp there is nothing to hide: a machine's /tmp is its own.
    if (underTmp(path)) return;
    for (const m of this.machines.values()) m.must(['mount', '-t', 'tmpfs', '-o', 'ro,size=4k,mode=0755', 'tmpfs', path], { cwd: '/' });
  }

  /** Call after every process inside has ended: namespaces, mounts, then files. */
  destroy(): void {
    for (const m of this.machines.values()) {
      for (const f of ['mnt', 'uts']) {
        const path = join(this.nsDir, `${m.name}.${f}`);
        spawnSync('umount', [path]);
        janitor.untrackMount(path);
      }
      spawnSync('ip', ['netns', 'del', m.netns]);
      janitor.untrackNetns(m.netns);
    }
    spawnSync('ip', ['netns', 'del', this.switchNs]);
    janitor.untrackNetns(this.switchNs);
    spawnSync('umount', [this.nsDir]);
    janitor.untrackMount(this.nsDir);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A path under the real /tmp, which no machine sees (each has its own /tmp). */
function underTmp(path: string): boolean {
  return path === '/tmp' || path.startsWith('/tmp/');
}
