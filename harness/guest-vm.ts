// One test guest in a QEMU we start ourselves, without host workers or Temporal: for tests and the lab
// benchmark of the migration layer. The command line is the product's (activities/host/qemu-args.ts:
// versioned machine type, qemu64 CPU, virtio disk and NIC), so what works here works for the product.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { QmpClient } from '../activities/qmp';
import { childLogger } from '../node/logger';
import { identify, terminate, type ProcessIdentity } from '../node/proc';
import { consoleSize, readConsole, waitForConsole } from './console';
import { janitor } from './janitor';
import { guestImageDir } from './testbed';

export const MACHINE_TYPE = 'pc-i440fx-7.2';

export interface GuestVmOptions {
  name: string;
  /** Folder for the QMP socket and the console log (created by the caller). */
  dir: string;
  memoryMiB: number;
  /** Kernel parameters after the fixed ones, e.g. `vccr.run=memfill vccr.args=--mb,64`. */
  append: string;
  /** Allocate (touch) all guest RAM when QEMU starts. */
  prealloc?: boolean;
  /** The disk's active qcow2 layer (node `drive-d0`). */
  disk?: string;
  /** A virtio NIC on a tap of this network namespace (QEMU is started inside it). */
  nic?: { netns: string; tap: string; mac: string };
  /** Start paused, waiting for `migrate-incoming` (a restore). */
  incoming?: boolean;
  /** Run QEMU as this uid/gid (tests of what an unprivileged QEMU cannot do). */
  user?: { uid: number; gid: number };
  /** Console file name in `dir` (default `<name>.console`): a restored VM gets its own. */
  consoleName?: string;
}

export class GuestVm {
  private constructor(
    readonly options: GuestVmOptions,
    readonly qmp: QmpClient,
    readonly consolePath: string,
    private readonly child: ChildProcess,
    private readonly id: ProcessIdentity,
  ) {}

  static async start(options: GuestVmOptions): Promise<GuestVm> {
    const consolePath = join(options.dir, options.consoleName ?? `${options.name}.console`);
    const qmpSocket = join(options.dir, `${options.name}${options.incoming ? '-in' : ''}.qmp`);
    const argv = [...qemuArgs(options, consolePath, qmpSocket)];
    const [cmd, ...args] = options.nic ? ['ip', 'netns', 'exec', options.nic.netns, 'qemu-system-x86_64', ...argv] : ['qemu-system-x86_64', ...argv];
    const child = spawn(cmd ?? 'qemu-system-x86_64', args, {
      stdio: ['ignore', 'ignore', 'inherit'],
      ...(options.user ? { uid: options.user.uid, gid: options.user.gid } : {}),
    });
    const pid = child.pid;
    const id = pid === undefined ? undefined : identify(pid);
    if (!id) throw new Error(`QEMU for ${options.name} did not start`);
    janitor.trackProcess(id.pid, `qemu ${options.name}`);
    try {
      const logger = childLogger('guest-vm', { vm: options.name });
      const qmp = await QmpClient.connect(qmpSocket, { retryWindowMs: 10_000, name: options.name, logger });
      return new GuestVm(options, qmp, consolePath, child, id);
    } catch (err) {
      await terminate(id, 'SIGKILL');
      janitor.untrackProcess(id);
      throw err;
    }
  }

  get pid(): number {
    return this.id.pid;
  }

  console(from = 0, to?: number): string {
    return readConsole(this.consolePath, from, to);
  }

  consoleSize(): number {
    return consoleSize(this.consolePath);
  }

  waitForConsole(pattern: RegExp, from = 0, timeoutMs = 120_000): Promise<RegExpMatchArray> {
    return waitForConsole(this.consolePath, pattern, { from, timeoutMs });
  }

  /** SIGKILL and wait until it is gone. Idempotent. */
  async kill(): Promise<void> {
    await this.qmp.close();
    await terminate(this.id, 'SIGKILL');
    if (this.child.exitCode === null && this.child.signalCode === null) await new Promise((resolve) => this.child.once('exit', resolve));
    janitor.untrackProcess(this.id);
  }

  /** SIGSTOP/SIGCONT the whole QEMU process. */
  signal(signal: 'SIGSTOP' | 'SIGCONT'): void {
    process.kill(this.id.pid, signal);
  }
}

function qemuArgs(o: GuestVmOptions, consolePath: string, qmpSocket: string): string[] {
  const image = guestImageDir();
  const args = [
    '-name', `${o.name},debug-threads=on`,
    '-machine', MACHINE_TYPE, '-accel', 'tcg', '-cpu', 'qemu64', '-m', `${o.memoryMiB}M`, '-smp', '1',
    ...(o.prealloc ? ['-mem-prealloc'] : []),
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-kernel', join(image, 'vmlinuz'), '-initrd', join(image, 'initrd.img'),
    '-append', `console=ttyS0 quiet panic=-1 ${o.append}`,
    '-chardev', `file,id=serial0,path=${consolePath},append=on`, '-serial', 'chardev:serial0',
    '-qmp', `unix:${qmpSocket},server=on,wait=off`,
  ];
  if (o.disk) {
    args.push('-drive', `file=${o.disk},if=none,id=drive-d0,format=qcow2,cache=writeback,discard=unmap`);
    args.push('-device', 'virtio-blk-pci,drive=drive-d0,id=disk-d0');
  }
  if (o.nic) {
    args.push('-netdev', `tap,id=net-n0,ifname=${o.nic.tap},script=no,downscript=no`);
    args.push('-device', `virtio-net-pci,netdev=net-n0,id=nic-n0,mac=${o.nic.mac}`);
  } else {
    args.push('-nic', 'none');
  }
  if (o.incoming) args.push('-incoming', 'defer', '-S');
  return args;
}
