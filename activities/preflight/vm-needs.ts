// Preflight of what a host's VMs need from the host itself: their network namespaces and tap devices,
// their boot files and disk images at the paths the spec names, the tools the worker runs for them
// (nsenter, qemu-img), and a state folder where QMP socket paths fit.
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fail, ok, type Check } from '../../common/doctor';
import type { ResolvedVm } from '../../common/spec';
import { resolveCommand } from './qemu';

const run = promisify(execFile);
const errCode = (err: unknown) => (err as NodeJS.ErrnoException).code ?? (err as Error).message;

/** Every netns and tap of this host's VMs exists, and every tap is a tap device. */
export async function checkNetwork(host: string, vms: ResolvedVm[]): Promise<Check> {
  const needed = vms.flatMap((vm) => vm.nics.map((nic) => ({ vm: vm.name, nic: nic.id, tap: nic.tap, netns: vm.netns })));
  const namespaces = [...new Set(vms.map((vm) => vm.netns).filter((n): n is string => n !== undefined))];
  if (!needed.length && !namespaces.length) return ok('network', 'no tap devices or network namespaces needed');
  if (!(await resolveCommand('ip'))) return fail('network', '`ip` (iproute2) is not installed', 'apt-get install iproute2');
  if (namespaces.length && !(await resolveCommand('nsenter'))) return fail('network', '`nsenter` (util-linux) is not installed', 'apt-get install util-linux');
  const problems: string[] = [];
  for (const ns of namespaces) {
    if (!(await access(`/run/netns/${ns}`).then(() => true, () => false))) problems.push(`network namespace ${ns} does not exist`);
  }
  for (const n of needed) {
    if (n.netns && problems.includes(`network namespace ${n.netns} does not exist`)) continue;
    const where = n.netns ? ` in network namespace ${n.netns}` : '';
    const out = await run('ip', [...(n.netns ? ['-n', n.netns] : []), '-d', '-o', 'link', 'show', 'dev', n.tap]).then(
      (r) => r.stdout,
      () => undefined,
    );
    if (out === undefined) problems.push(`tap ${n.tap} (${n.vm} ${n.nic}) does not exist${where}`);
    else if (!/\btun type tap\b/.test(out)) problems.push(`${n.tap} (${n.vm} ${n.nic})${where} is not a tap device`);
  }
  const taps = needed.map((n) => `${n.tap}${n.netns ? `@${n.netns}` : ''}`).join(', ');
  if (!problems.length) return ok('network', `tap devices ${taps || '-'}${namespaces.length ? ` (namespaces ${namespaces.join(', ')})` : ''} present`);
  return fail(
    'network',
    `host ${host}: ${problems.join('; ')}`,
    'create them as your network setup does, e.g. `ip tuntap add dev TAP mode tap` (with `ip -n NS` inside a namespace, `ip netns add NS` first) and attach them to the VMs\' bridge',
  );
}

/** Kernels, initrds and disk images the VMs boot from are readable at the spec's paths. */
export async function checkImages(host: string, vms: ResolvedVm[]): Promise<Check> {
  const files = vms.flatMap((vm) => [
    ...(vm.boot ? [vm.boot.kernel, ...(vm.boot.initrd ? [vm.boot.initrd] : [])].map((path) => ({ vm: vm.name, path })) : []),
    ...vm.disks.map((d) => ({ vm: vm.name, path: d.image })),
  ]);
  if (!files.length) return ok('images', 'no boot files or disk images needed');
  const problems: string[] = [];
  for (const f of files) {
    await access(f.path, constants.R_OK).catch((err: unknown) => problems.push(`${f.path} (${f.vm}): ${errCode(err)}`));
  }
  if (vms.some((vm) => vm.disks.length) && !(await resolveCommand('qemu-img'))) problems.push('`qemu-img` is not installed (apt-get install qemu-utils)');
  if (!problems.length) return ok('images', `${files.length} boot file${files.length === 1 ? '' : 's'} and images readable`);
  return fail('images', `host ${host} cannot read ${problems.join('; ')}`, 'copy every image to the same path on each host that runs (or may take over) the VM');
}

/** sockaddr_un allows 107 bytes of path: the worker's QMP sockets must fit. */
const MAX_SOCKET_PATH = 107;

/** The worker's state folder is writable and short enough for the VMs' QMP socket paths. */
export async function checkStateDir(stateDir: string, cluster: string | undefined, vms: ResolvedVm[]): Promise<Check> {
  try {
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    const probe = join(stateDir, `.doctor-${process.pid}`);
    await writeFile(probe, 'ok');
    await rm(probe, { force: true });
  } catch (err) {
    return fail('state-dir', `${stateDir} is not writable: ${errCode(err)}`, 'give the worker a writable --state-dir (VCCR_STATE_DIR), e.g. /var/lib/vccr/hosts/<id>');
  }
  const longest = vms.map((vm) => join(stateDir, cluster ?? '', vm.name, 'guard.sock')).sort((a, b) => b.length - a.length)[0];
  if (longest && Buffer.byteLength(longest) > MAX_SOCKET_PATH) {
    return fail('state-dir', `socket path ${longest} is longer than ${MAX_SOCKET_PATH} bytes`, 'give the worker a shorter --state-dir (VCCR_STATE_DIR)');
  }
  return ok('state-dir', `${stateDir} writable`);
}
