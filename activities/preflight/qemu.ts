// Preflight of a host's QEMU: the binary runs and its version, the accelerators the spec's VMs ask for,
// and whether userfaultfd write-protect works — what live checkpoints (QEMU's background snapshot) need.
// The last is a real probe, not a guess from the kernel version: a QEMU without guest hardware is
// asked to enable the `background-snapshot` migration capability, which QEMU refuses unless it can
// create a userfaultfd with write-protect support — with this worker's privileges, as the VMs will run.
import { execFile, spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { release } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { fail, ok, warn, type Check } from '../../common/doctor';
import { QmpClient } from '../qmp';
import { configureMigration, MigrationError } from '../host/migration';
import { probeQemuBinary } from '../host/qemu-binary';

const run = promisify(execFile);

/** A command name resolved through PATH, as execFile would (for messages). */
export async function resolveCommand(name: string): Promise<string | undefined> {
  if (name.includes('/')) return name;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const path = join(dir, name);
    if (await access(path, constants.X_OK).then(() => true, () => false)) return path;
  }
  return undefined;
}

/** The version QEMU was developed and tested with; older ones may lack QMP features we use. */
const TESTED_QEMU = [7, 2];

export async function checkQemuBinary(qemu: string): Promise<{ check: Check; works: boolean }> {
  const path = (await resolveCommand(qemu)) ?? qemu;
  try {
    const info = await probeQemuBinary(path);
    const [major = 0, minor = 0] = info.version.split('.').map(Number);
    if (major < (TESTED_QEMU[0] ?? 0) || (major === TESTED_QEMU[0] && minor < (TESTED_QEMU[1] ?? 0))) {
      return { check: warn('qemu', `${path} ${info.version}`, `VCCR is tested with QEMU ${TESTED_QEMU.join('.')} (Debian 12's qemu-system-x86); upgrade if a step fails`), works: true };
    }
    return { check: ok('qemu', `${path} ${info.version}`), works: true };
  } catch (err) {
    const fix = 'install QEMU (`apt-get install qemu-system-x86 qemu-utils`) or point the worker at it (VCCR_QEMU / --qemu)';
    return { check: fail('qemu', (err as Error).message, fix), works: false };
  }
}

/** Accelerators the binary supports and the host allows; `needed` are those the host's VMs ask for. */
export async function checkAccelerators(qemu: string, needed: Set<string>): Promise<Check> {
  let listed: string[] = [];
  try {
    listed = (await run(qemu, ['-accel', 'help'])).stdout.split('\n').map((l) => l.trim()).filter((l) => /^[a-z]+$/.test(l));
  } catch (err) {
    return fail('accel', `cannot list the accelerators of ${qemu}: ${(err as Error).message}`, 'install a working QEMU');
  }
  const kvmDevice = await open('/dev/kvm', 'r+').then(
    async (h) => (await h.close(), 'usable'),
    (err: NodeJS.ErrnoException) => `not usable (/dev/kvm: ${err.code ?? err.message})`,
  );
  const available = listed.filter((a) => a !== 'kvm' || kvmDevice === 'usable');
  const describe = listed.map((a) => (a === 'kvm' && kvmDevice !== 'usable' ? `kvm ${kvmDevice}` : a)).join(', ');
  const missing = [...needed].filter((a) => !available.includes(a));
  const uses = needed.size ? `; the VMs here use ${[...needed].join(', ')}` : '';
  if (missing.length) {
    const fix = missing.includes('kvm')
      ? 'enable virtualisation in the firmware and load kvm_intel/kvm_amd (and let the worker open /dev/kvm), or give the VMs "accel": "tcg"'
      : `use a QEMU built with ${missing.join(', ')}`;
    return fail('accel', `accelerators: ${describe}${uses}: ${missing.join(', ')} unavailable`, fix);
  }
  return ok('accel', `accelerators: ${describe}${uses}`);
}

async function unprivilegedUffd(): Promise<string> {
  return (await readFile('/proc/sys/vm/unprivileged_userfaultfd', 'utf8').catch(() => '?')).trim();
}

/**
 * userfaultfd write-protect, probed through QEMU itself. A warning, not a failure, while checkpoints stop
 * the VMs: only live checkpoints will need it.
 */
export async function checkUffdWriteProtect(qemu: string, scratchDir: string): Promise<Check> {
  const kernel = `kernel ${release()}, vm.unprivileged_userfaultfd=${await unprivilegedUffd()}`;
  const fix =
    'live checkpoints need userfaultfd write-protect: Linux 5.7 or newer, and QEMU must be allowed to create a userfaultfd ' +
    '(root with CAP_SYS_PTRACE — keep it in the unit\'s CapabilityBoundingSet — or `sysctl vm.unprivileged_userfaultfd=1`)';
  const dir = await mkdtemp(join(scratchDir, 'uffd-'));
  const socket = join(dir, 'qmp.sock');
  const child = spawn(qemu, ['-machine', 'none', '-nodefaults', '-display', 'none', '-qmp', `unix:${socket},server=on,wait=off`], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('error', () => undefined);
  try {
    const qmp = await QmpClient.connect(socket, { retryWindowMs: 10_000, connectTimeoutMs: 2000 });
    try {
      await configureMigration(qmp, 'probe', { events: false, backgroundSnapshot: true });
      return ok('uffd-wp', `userfaultfd write-protect available (${kernel})`);
    } catch (err) {
      if (err instanceof MigrationError && err.kind === 'unsupported') return warn('uffd-wp', `userfaultfd write-protect unavailable: ${err.qemuSaid ?? err.message} (${kernel})`, fix);
      throw err;
    } finally {
      await qmp.command('quit').catch(() => undefined);
      await qmp.close();
    }
  } catch (err) {
    return warn('uffd-wp', `could not probe userfaultfd write-protect: ${(err as Error).message} (${kernel})`, fix);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited;
    await rm(dir, { recursive: true, force: true });
  }
}
