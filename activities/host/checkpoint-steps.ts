// The host's part of a checkpoint: prepare, pause, freeze disks, resume (the save is save-step.ts). Each
// step takes all of this host's VMs at once and works on them in parallel; each is idempotent, so an
// activity retried after a worker crash finds what was already done and goes on. Every QMP sequence that
// moves VM state or changes its run state goes through the migration layer (./migration).
import { existsSync } from 'node:fs';
import { chmod, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { checkpointLayerLabel, storeLayout } from '../../common/store-layout';
import { backingChain, type QmpClient } from '../qmp';
import { testHook } from '../test-hooks';
import { hostNow } from './clock';
import { writeChainRecord } from './disks';
import { consoleSize } from './launch';
import { cancelMigration, configureMigration, MigrationError, pauseVm, resumeVm, UNLIMITED_BANDWIDTH, waitUntil, type RunStateChange } from './migration';
import { ensurePauseGuard } from './pause-guard';
import type { VmRecord } from './registry';
import type { HostRuntime } from './runtime';
import type { FreezeRequest, FrozenVm, PauseRequest, PrepareReport, PrepareRequest, ResumeReport, ResumeRequest, VmTimestamp } from './types';

/** Runs `step` on each VM of the request (all at once), one step at a time per VM. */
export function eachVm<T>(runtime: HostRuntime, cluster: string, vms: string[], step: (record: VmRecord) => Promise<T>): Promise<T[]> {
  const records = vms.map((vm) => runtime.requireVm(cluster, vm));
  return Promise.all(records.map((record) => runtime.exclusive(cluster, record.name, () => step(record))));
}

export async function prepareCheckpoint(runtime: HostRuntime, req: PrepareRequest): Promise<PrepareReport> {
  const receivedAt = hostNow();
  const dir = storeLayout.checkpointDir(req.store, req.cluster, req.checkpointId);
  if (!existsSync(dir)) {
    throw ApplicationFailure.nonRetryable(`checkpoint folder ${dir} is not visible from host ${runtime.hostId} (is the store shared?)`, 'StoreNotShared');
  }
  const fs = await statfs(dir);
  const vms = await eachVm(runtime, req.cluster, req.vms, async (record) => {
    const qmp = await runtime.qmp(record);
    const { status } = await qmp.command('query-status');
    if (status !== 'running' && status !== 'paused' && status !== 'postmigrate') {
      throw ApplicationFailure.nonRetryable(`VM ${record.name} is ${status}; cannot checkpoint it`, 'VmNotCheckpointable');
    }
    // A migration left over from a save attempt whose worker died: its reader is gone, so cancel it.
    await cancelMigration(qmp, record.name);
    await configureMigration(qmp, record.name, { events: true, backgroundSnapshot: false, maxBandwidth: UNLIMITED_BANDWIDTH });
    return {
      name: record.name,
      qmpStatus: status,
      ramBytes: record.config.machine === 'none' ? 0 : record.config.memoryMiB * 1024 * 1024,
      diskIds: record.disks.map((d) => d.id),
      config: record.config,
      machineType: record.machineType,
      argv: record.argv,
      consoleLog: record.consoleLog,
    };
  });
  return { host: runtime.hostId, receivedAt, qemuVersion: runtime.qemu.version, storeFreeBytes: Number(fs.bavail) * Number(fs.bsize), vms };
}

export async function pauseVms(runtime: HostRuntime, req: PauseRequest): Promise<VmTimestamp[]> {
  const receivedAt = hostNow();
  return pauseAtBarrier(runtime, req, async (record, _qmp, stopped) => {
    const offset = consoleSize(record);
    return { name: record.name, at: stopped.repliedAtMs, receivedAt, ...(offset !== undefined ? { consoleOffset: offset } : {}) };
  });
}

/**
 * The pause barrier on this host: each VM's lease held and QMP session open, then at the barrier's instant
 * every VM's stop (its lease re-checked right before), then `afterStop` for that VM (not waiting for the
 * others). Not behind runtime.exclusive(): the barrier is on the critical path, and stop is idempotent.
 */
export async function pauseAtBarrier<T>(
  runtime: HostRuntime,
  req: PauseRequest,
  afterStop: (record: VmRecord, qmp: QmpClient, stopped: RunStateChange) => Promise<T>,
): Promise<T[]> {
  const records = req.vms.map((vm) => runtime.requireVm(req.cluster, vm));
  ensurePauseGuard(runtime.registry.stateDir);
  // Everything that can be done before the stop is done first, so the stops themselves go out together.
  const qmps = await Promise.all(records.map((record) => runtime.qmp(record)));
  const leases = records.map((record) => runtime.watchdog.hold(record, req.checkpointId, req.runId, req.pauseBoundMs));
  await waitUntil(barrierTime(runtime, req.notBefore, Math.min(...leases.map((l) => l.deadline))));
  return Promise.all(
    records.map(async (record, i) => {
      await testHook('pause:before-stop', record.name);
      // The checkpoint may have been abandoned, or its bound passed, while we waited: then no stop. Nothing
      // is awaited between this check and the stop (pauseVm sends it at once), so a resume of this VM goes
      // out after the stop.
      runtime.watchdog.check(record, req.checkpointId, req.runId);
      const qmp = qmps[i];
      if (!qmp) throw new Error(`no QMP session for VM ${record.name}`);
      const stopped = await pauseVm(qmp, record.name).catch((err: unknown) => {
        throw notPausedError(err, 'after its stop');
      });
      return afterStop(record, qmp, stopped);
    }),
  );
}

/**
 * The workflow schedules a timed barrier at most about a second ahead (workflows/barriers.ts); one that
 * looks further off than this means this host's clock is behind, and waiting for it would keep the
 * other hosts' VMs paused (or outlast the pause lease): act now instead.
 */
export const MAX_BARRIER_WAIT_MS = 2500;

/** When to act for a barrier at `notBefore`: never later than `latest`, nor absurdly far ahead. */
function barrierTime(runtime: HostRuntime, notBefore: number | undefined, latest = Number.POSITIVE_INFINITY): number | undefined {
  if (notBefore === undefined) return undefined;
  const now = hostNow();
  if (notBefore - now > MAX_BARRIER_WAIT_MS) {
    runtime.log.warn({ aheadMs: notBefore - now }, 'barrier scheduled implausibly far ahead: this host clock is behind; acting now');
    return now;
  }
  return Math.min(notBefore, latest);
}

/**
 * The VM must not be running: something other than our watchdog (an operator's cont, a stale release)
 * may have resumed it, and a running VM's state and disk are no longer the checkpoint's cut.
 */
export async function requirePaused(qmp: QmpClient, vm: string, when: string, allowed = ['paused', 'postmigrate']): Promise<void> {
  const { status } = await qmp.command('query-status');
  if (!allowed.includes(status)) throw vmNotPaused(vm, status, when);
}

function vmNotPaused(vm: string, status: string, when: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(`VM ${vm} is ${status} ${when}, not paused: it was resumed outside the checkpoint`, 'VmNotPaused');
}

/** A pause that left the VM in another run state is VmNotPaused; other failures pass through. */
function notPausedError(err: unknown, when: string): unknown {
  return err instanceof MigrationError && err.runState !== undefined ? vmNotPaused(err.vm, err.runState, when) : err;
}

export async function freezeDisks(runtime: HostRuntime, req: FreezeRequest): Promise<FrozenVm[]> {
  return eachVm(runtime, req.cluster, req.vms, (record) => freezeVm(runtime, req, record));
}

/** While the VM is paused: each disk's top layer becomes the checkpoint's frozen layer (idempotent per run). */
export async function freezeVm(runtime: HostRuntime, req: FreezeRequest, record: VmRecord): Promise<FrozenVm> {
  await testHook('freeze:before', record.name);
  runtime.watchdog.check(record, req.checkpointId, req.runId);
  const qmp = await runtime.qmp(record);
  await requirePaused(qmp, record.name, 'before its disks are frozen');
  const blocks = await qmp.command('query-block');
  const frozen = [];
  const chains = [];
  for (const disk of record.disks) {
    // Named after the run too: only a retry of this very run may find it in place (checkpointLayerLabel).
    const newActive = storeLayout.diskLayer(req.store, req.cluster, record.name, disk.id, checkpointLayerLabel(req.checkpointId, req.runId));
    const device = `drive-${disk.id}`;
    const current = blocks.find((b) => b.device === device)?.inserted;
    if (!current) throw new Error(`VM ${record.name} has no block device ${device}`);
    let frozenLayer: string;
    let backing: string[];
    if (current.file === newActive) {
      // Done by an earlier attempt of this run whose result was lost: QEMU's chain is the truth.
      const chain = backingChain(current.image);
      frozenLayer = chain[1] ?? '';
      backing = chain.slice(2);
    } else {
      if (current.file !== disk.active) {
        throw new Error(`VM ${record.name} disk ${disk.id} runs on ${current.file}, but the record says ${disk.active}`);
      }
      if (dirname(newActive) !== dirname(disk.active)) {
        // The store of a request must be the one the VM's disk lives in: never move a disk elsewhere.
        throw ApplicationFailure.nonRetryable(`store ${req.store} is not where disk ${disk.id} of VM ${record.name} lives (${dirname(disk.active)})`, 'InvalidRequest');
      }
      await qmp.command('blockdev-snapshot-sync', { device, 'snapshot-file': newActive, format: 'qcow2' });
      frozenLayer = disk.active;
      // QEMU's chain, not the record's: merges (compact.ts) may have shortened it since.
      backing = backingChain(current.image).slice(1);
    }
    frozen.push({ id: disk.id, frozen: frozenLayer, backing, newActive });
    chains.push({ id: disk.id, active: newActive, backing: [frozenLayer, ...backing] });
  }
  // The overlay QEMU just created holds guest data from now on: private like everything else.
  for (const c of chains) await chmod(c.active, 0o600);
  runtime.registry.put({ ...record, disks: chains });
  for (const c of chains) {
    await writeChainRecord(req.store, { cluster: req.cluster, vm: record.name, disk: c.id, active: c.active, backing: c.backing });
  }
  return { name: record.name, disks: frozen, at: hostNow() };
}

/**
 * Resumes each VM on its own: one VM that cannot be resumed (its QEMU died, say) must not keep the others
 * paused. Never throws for a single VM; the report says which ones failed and why.
 */
export async function resumeVms(runtime: HostRuntime, req: ResumeRequest): Promise<ResumeReport> {
  const receivedAt = hostNow();
  const ours = (name: string) => {
    const record = runtime.registry.get(req.cluster, name);
    return record?.host === runtime.hostId ? record : undefined;
  };
  const checkpointId = req.checkpointId;
  // Abandoning: end the checkpoint first, so a pause or save of it that arrives late is refused; each lease
  // stays armed until its VM's cont succeeded (a worker dying in between leaves the VM to the guard).
  if (req.abandon && checkpointId) {
    for (const name of req.vms) {
      const record = ours(name);
      if (record) runtime.watchdog.abandon(record, checkpointId);
    }
  }
  const sessions = await Promise.allSettled(req.vms.map(async (name) => runtime.qmp(runtime.requireVm(req.cluster, name))));
  await waitUntil(barrierTime(runtime, req.notBefore));
  const outcomes = await Promise.allSettled(
    req.vms.map(async (name, i): Promise<VmTimestamp> => {
      const session = sessions[i];
      if (!session || session.status === 'rejected') throw session?.reason ?? new Error('no QMP session');
      const qmp = session.value;
      if (req.abandon) {
        const { status } = await qmp.command('query-status');
        if (status === 'inmigrate') throw new Error('it is still waiting for its state');
        // A save may still be running: end it first, or cont would turn it into a live migration that
        // keeps writing while the guest runs.
        await cancelMigration(qmp, name);
      }
      await testHook('resume:before-cont', name);
      const resumed = await resumeVm(qmp, name); // a no-op on a running VM
      const record = checkpointId ? ours(name) : undefined;
      if (record && checkpointId) runtime.watchdog.release(record, checkpointId);
      return { name, at: resumed.repliedAtMs, receivedAt };
    }),
  );
  const report: ResumeReport = { resumed: [], failed: [] };
  outcomes.forEach((o, i) => {
    if (o.status === 'fulfilled') report.resumed.push(o.value);
    else report.failed.push({ name: req.vms[i] ?? '', reason: o.reason instanceof Error ? o.reason.message : String(o.reason) });
  });
  if (report.failed.length) runtime.log.error({ cluster: req.cluster, failed: report.failed }, 'VMs could not be resumed');
  return report;
}
