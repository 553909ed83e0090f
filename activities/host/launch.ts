// Starting a VM's QEMU process: overlays first, then QEMU daemonized (it outlives this worker), then
// its record. Idempotent per operation: a retried launch finds the VM it started and returns it.
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { processStartTime, terminate } from '../../node/proc';
import { storeLayout } from '../../common/store-layout';
import type { ResolvedVm } from '../../common/spec';
import { buildQemuArgs } from './qemu-args';
import { createOverlay, writeChainRecord } from './disks';
import { chainFiles } from '../qemu-img';
import type { HostRuntime } from './runtime';
import type { VmRecord } from './registry';
import type { DiskChain, LaunchedVm } from './types';

/** sockaddr_un allows 107 bytes of path. */
const MAX_SOCKET_PATH = 107;

export interface LaunchOne {
  vm: ResolvedVm;
  store: string;
  operationId: string;
  /** For a restore: per disk id, the frozen chain (top first). */
  frozen?: Record<string, string[]>;
  restoringFrom?: string;
}

export async function launchVm(runtime: HostRuntime, req: LaunchOne): Promise<LaunchedVm> {
  const { vm, store, operationId } = req;
  if (vm.host !== runtime.hostId) {
    throw ApplicationFailure.nonRetryable(`VM ${vm.name} belongs to host ${vm.host}, not ${runtime.hostId}`, 'WrongHost');
  }
  const existing = runtime.registry.get(vm.cluster, vm.name);
  if (existing && runtime.alive(existing)) {
    if (existing.operationId === operationId) return describe(runtime, existing, true);
    throw ApplicationFailure.nonRetryable(
      `VM ${vm.name} of cluster ${vm.cluster} is already running on host ${runtime.hostId} (pid ${existing.pid}, started by ${existing.operationId})`,
      'VmAlreadyRunning',
    );
  }
  if (existing) await runtime.dropSession(vm.cluster, vm.name);

  const paths = await freshVmDir(runtime, vm);
  const disks = await createDisks(req, paths);

  const machineType = runtime.qemu.machineAliases[vm.machine] ?? vm.machine;
  const argv = buildQemuArgs({ vm, machineType, paths, incoming: req.restoringFrom !== undefined });
  const marker = req.restoringFrom ? `restoring from checkpoint ${req.restoringFrom}` : 'launching';
  appendFileSync(paths.consoleLog, `\n=== vccr: ${marker} (${operationId}) at ${new Date().toISOString()} ===\n`, { mode: 0o600 });

  const launchedAt = new Date().toISOString();
  await runDaemonized(runtime.qemu.path, argv, vm.netns);
  const pid = Number.parseInt(readFileSync(paths.pidFile, 'utf8').trim(), 10);
  const startTime = processStartTime(pid);
  if (!Number.isInteger(pid) || startTime === undefined) {
    throw new Error(`QEMU for VM ${vm.name} daemonized but its process ${pid} is gone; see ${paths.consoleLog}`);
  }
  const record: VmRecord = {
    version: 1,
    host: runtime.hostId,
    cluster: vm.cluster,
    name: vm.name,
    config: vm,
    machineType,
    qemuBinary: runtime.qemu.path,
    qemuVersion: runtime.qemu.version,
    argv,
    pid,
    startTime,
    qmpSocket: paths.qmpSocket,
    guardSocket: paths.guardSocket,
    consoleLog: paths.consoleLog,
    operationId,
    launchedAt,
    incarnation: (existing?.incarnation ?? -1) + 1,
    disks,
    ...(req.restoringFrom ? { restoringFrom: req.restoringFrom } : {}),
  };
  runtime.registry.put(record);
  for (const d of disks) await writeChainRecord(store, { cluster: vm.cluster, vm: vm.name, disk: d.id, active: d.active, backing: d.backing });
  runtime.log.info({ vm: vm.name, cluster: vm.cluster, pid, operationId, restoringFrom: req.restoringFrom }, 'VM launched');
  return describe(runtime, record, false);
}

interface VmPaths {
  qmpSocket: string;
  guardSocket: string;
  consoleLog: string;
  pidFile: string;
  /** Disk id → the layer QEMU opens. */
  diskLayers: Record<string, string>;
}

/** The VM's folder, with no socket or pid file of an earlier incarnation left (and no orphan QEMU). */
async function freshVmDir(runtime: HostRuntime, vm: ResolvedVm): Promise<VmPaths> {
  const dir = runtime.registry.vmDir(vm.cluster, vm.name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const paths: VmPaths = {
    qmpSocket: join(dir, 'qmp.sock'),
    guardSocket: join(dir, 'guard.sock'),
    consoleLog: join(dir, 'console.log'),
    pidFile: join(dir, 'qemu.pid'),
    diskLayers: {},
  };
  for (const socket of [paths.qmpSocket, paths.guardSocket]) {
    if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
      throw ApplicationFailure.nonRetryable(
        `socket path ${socket} is longer than ${MAX_SOCKET_PATH} bytes: give the host worker a shorter --state-dir`,
        'PathTooLong',
      );
    }
  }
  // A worker that died between starting QEMU and writing the record leaves a QEMU nobody knows: end it.
  await killOrphan(paths.pidFile, paths.qmpSocket);
  for (const path of [paths.qmpSocket, paths.guardSocket, paths.pidFile]) rmSync(path, { force: true });
  return paths;
}

/** A new top layer per disk — over the base image, or for a restore over the checkpoint's frozen layer. */
async function createDisks(req: LaunchOne, paths: VmPaths): Promise<DiskChain[]> {
  const { vm, store, operationId } = req;
  const disks: DiskChain[] = [];
  for (const disk of vm.disks) {
    const layer = storeLayout.diskLayer(store, vm.cluster, vm.name, disk.id, operationId);
    let backing: string[];
    if (req.frozen) {
      const chain = req.frozen[disk.id];
      if (!chain?.[0]) throw ApplicationFailure.nonRetryable(`no frozen layer recorded for disk ${disk.id} of VM ${vm.name}`, 'CorruptManifest');
      await createOverlay(layer, chain[0], 'qcow2');
      // The headers are the truth: merges may have shortened the chain the manifest recorded.
      backing = (await chainFiles(layer)).slice(1);
    } else {
      await createOverlay(layer, disk.image, disk.format);
      backing = [disk.image];
    }
    paths.diskLayers[disk.id] = layer;
    disks.push({ id: disk.id, active: layer, backing });
  }
  return disks;
}

async function describe(runtime: HostRuntime, record: VmRecord, alreadyRunning: boolean): Promise<LaunchedVm> {
  const qmp = await runtime.qmp(record);
  const { status } = await qmp.command('query-status');
  return {
    name: record.name,
    pid: record.pid,
    qmpStatus: status,
    machineType: record.machineType,
    qemuVersion: record.qemuVersion,
    argv: record.argv,
    disks: record.disks,
    consoleLog: record.consoleLog,
    launchedAt: record.launchedAt,
    alreadyRunning,
  };
}

/**
 * Runs QEMU with -daemonize: the first process exits once the VM is set up (or failed to be), and
 * reports errors on stderr. Inside a network namespace, nsenter puts it there first (no shell either way).
 */
async function runDaemonized(qemu: string, argv: string[], netns: string | undefined): Promise<void> {
  const [cmd, args] = netns
    ? ['nsenter', [`--net=/run/netns/${netns}`, '--', qemu, ...argv]]
    : [qemu, argv];
  if (netns && !existsSync(`/run/netns/${netns}`)) {
    throw ApplicationFailure.nonRetryable(`network namespace ${netns} does not exist on this host`, 'NoSuchNetns');
  }
  await new Promise<void>((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 8192) stderr += chunk.toString();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('QEMU did not finish starting within 60 s'));
    }, 60_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else {
        const why = stderr.trim().replace(/^[\d-]+T[\d:.]+Z? ?/gm, '') || `exit ${code ?? signal}`;
        reject(ApplicationFailure.nonRetryable(`QEMU failed to start: ${why}`, 'QemuStartFailed'));
      }
    });
  });
}

async function killOrphan(pidFile: string, qmpSocket: string): Promise<void> {
  if (!existsSync(pidFile)) return;
  const pid = Number.parseInt(readFileSync(pidFile, 'utf8').trim(), 10);
  const startTime = Number.isInteger(pid) ? processStartTime(pid) : undefined;
  if (startTime === undefined) return;
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return;
  }
  if (!cmdline.includes(qmpSocket)) return; // the pid was reused by something else
  await terminate({ pid, startTime }, 'SIGKILL');
}

export function consoleSize(record: VmRecord): number | undefined {
  try {
    return statSync(record.consoleLog).size;
  } catch {
    return undefined;
  }
}
