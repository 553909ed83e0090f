// Builds QEMU's argv from a resolved VM (pure: same input, same argv). A restored VM must get exactly the
// device topology it was saved with, so nothing here depends on the host, the time or anything random;
// the only differences between a launch and a restore are the disk layer files and `-incoming defer -S`.
import type { ResolvedVm } from '../../common/spec';

export interface VmRuntimePaths {
  qmpSocket: string;
  /** Second QMP monitor, used only by the pause watchdog (QEMU serves one client per monitor). */
  guardSocket: string;
  consoleLog: string;
  pidFile: string;
  /** Active (writable) layer per disk id. */
  diskLayers: Record<string, string>;
}

export interface LaunchArgs {
  vm: ResolvedVm;
  /** Versioned machine type, e.g. pc-i440fx-7.2 (never the moving alias). */
  machineType: string;
  paths: VmRuntimePaths;
  /** Start paused, waiting for `migrate-incoming` (restart from a checkpoint). */
  incoming: boolean;
}

export function buildQemuArgs({ vm, machineType, paths, incoming }: LaunchArgs): string[] {
  const args: string[] = [
    '-name', `${vm.cluster}.${vm.name},debug-threads=on`,
    '-machine', machineType,
    '-accel', vm.accel,
    // machine 'none' has no CPU or RAM to configure.
    ...(vm.machine === 'none' ? [] : ['-cpu', 'qemu64', '-m', `${vm.memoryMiB}M`, '-smp', String(vm.vcpus)]),
    '-nodefaults', '-no-user-config', '-display', 'none',
    '-msg', 'timestamp=on',
    '-chardev', `file,id=serial0,path=${paths.consoleLog},append=on`,
    '-serial', 'chardev:serial0',
    '-chardev', `socket,id=qmp0,path=${paths.qmpSocket},server=on,wait=off`,
    '-mon', 'chardev=qmp0,mode=control',
    '-chardev', `socket,id=qmp1,path=${paths.guardSocket},server=on,wait=off`,
    '-mon', 'chardev=qmp1,mode=control',
    '-pidfile', paths.pidFile,
    '-daemonize',
  ];
  if (vm.boot) {
    args.push('-kernel', vm.boot.kernel);
    if (vm.boot.initrd) args.push('-initrd', vm.boot.initrd);
    if (vm.boot.append !== undefined) args.push('-append', vm.boot.append);
  }
  vm.disks.forEach((disk, i) => {
    const layer = paths.diskLayers[disk.id];
    if (!layer) throw new Error(`no active layer for disk ${disk.id} of VM ${vm.name}`);
    args.push('-drive', `file=${layer},if=none,id=drive-${disk.id},format=qcow2,cache=writeback,discard=unmap`);
    const bootIndex = !vm.boot && i === 0 ? ',bootindex=1' : '';
    args.push('-device', `virtio-blk-pci,drive=drive-${disk.id},id=disk-${disk.id}${bootIndex}`);
  });
  for (const nic of vm.nics) {
    args.push('-netdev', `tap,id=net-${nic.id},ifname=${nic.tap},script=no,downscript=no`);
    args.push('-device', `virtio-net-pci,netdev=net-${nic.id},id=nic-${nic.id},mac=${nic.mac}`);
  }
  if (incoming) args.push('-incoming', 'defer', '-S');
  return args;
}
