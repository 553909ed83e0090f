// The host's part of a checkpoint: prepare, pause, freeze disks, save state, resume. Each step takes all
// of this host's VMs at once and works on them in parallel; each is idempotent, so an activity retried
// after a worker crash finds what was already done and goes on.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { hostNow } from './clock';
import { chmod, rm, rename, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { z } from 'zod';
import { stateCodecSchema } from '../../common/spec';
import { fsyncDir, writeFileAtomic } from '../../common/fsutil';
import { checkpointLayerLabel, storeLayout } from '../../common/store-layout';
import { backingChain, type QmpClient } from '../qmp';
import { writeChainRecord } from './disks';
import { consoleSize } from './launch';
import { StateReceiver } from './transfer';
import { ensurePauseGuard } from './guard';
import { testHook } from '../test-hooks';
import type { HostRuntime } from './runtime';
import type { VmRecord } from './registry';
import type {
  FreezeRequest,
  FrozenVm,
  PauseRequest,
  PrepareReport,
  PrepareRequest,
  ResumeRequest,
  SaveRequest,
  ResumeReport,
  SavedState,
  VmTimestamp,
} from './types';

/** QEMU caps migration at 128 MiB/s by default; a paused VM has no reason to be throttled. */
const UNLIMITED_BANDWIDTH = 2 ** 40; // 1 TiB/s

const savedSidecarSchema = z.object({
  /** The run that saved it: only a retry of that run may take the file as done. */
  runId: z.string(),
  size: z.number().int().positive(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  startedAt: z.number(),
  finishedAt: z.number(),
  codec: stateCodecSchema.optional(),
  rawSize: z.number().int().nonnegative().optional(),
});

function eachVm<T>(runtime: HostRuntime, cluster: string, vms: string[], step: (record: VmRecord) => Promise<T>): Promise<T[]> {
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
    const migration = await qmp.command('query-migrate');
    if (migration.status === 'active' || migration.status === 'setup') {
      // Left over from a save attempt whose worker died: its reader is gone, so cancel it.
      await qmp.command('migrate_cancel');
    }
    await qmp.command('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
    await qmp.command('migrate-set-parameters', { 'max-bandwidth': UNLIMITED_BANDWIDTH });
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
  // Not behind runtime.exclusive(): the pause barrier is on the critical path, and stop is idempotent.
  const records = req.vms.map((vm) => runtime.requireVm(req.cluster, vm));
  ensurePauseGuard(runtime.registry.stateDir);
  // Everything that can be done before the stop is done first, so the stops themselves go out together.
  const qmps = await Promise.all(records.map((record) => runtime.qmp(record)));
  const leases = records.map((record) => runtime.watchdog.hold(record, req.checkpointId, req.runId, req.pauseBoundMs));
  await until(barrierTime(runtime, req.notBefore, Math.min(...leases.map((l) => l.deadline))));
  return Promise.all(
    records.map(async (record, i) => {
      await testHook('pause:before-stop', record.name);
      // The checkpoint may have been abandoned, or its bound passed, while we waited: then no stop. Nothing
      // is awaited between this check and the stop, so a resume of this VM goes out after the stop.
      runtime.watchdog.check(record, req.checkpointId, req.runId);
      const qmp = qmps[i];
      if (!qmp) throw new Error(`no QMP session for VM ${record.name}`);
      await qmp.command('stop');
      const at = hostNow();
      await requirePaused(qmp, record.name, 'after its stop');
      const offset = consoleSize(record);
      return { name: record.name, at, receivedAt, ...(offset !== undefined ? { consoleOffset: offset } : {}) };
    }),
  );
}

/**
 * The workflow schedules a timed barrier at most about a second ahead (workflows/proxies.ts); one that
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
async function requirePaused(qmp: QmpClient, vm: string, when: string, allowed = ['paused', 'postmigrate']): Promise<void> {
  const { status } = await qmp.command('query-status');
  if (!allowed.includes(status)) {
    throw ApplicationFailure.nonRetryable(`VM ${vm} is ${status} ${when}, not paused: it was resumed outside the checkpoint`, 'VmNotPaused');
  }
}

/** Waits until the epoch ms `at` (a timed barrier: every host acts at the same moment). */
async function until(at: number | undefined): Promise<void> {
  const wait = at === undefined ? 0 : at - hostNow();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}

export async function freezeDisks(runtime: HostRuntime, req: FreezeRequest): Promise<FrozenVm[]> {
  return eachVm(runtime, req.cluster, req.vms, async (record) => {
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
  });
}

export async function saveVmStates(runtime: HostRuntime, req: SaveRequest, reportProgress: (vm: string, done: number, total: number) => void): Promise<SavedState[]> {
  const ctx = Context.current();
  const bytes = new Map<string, number>();
  const beat = setInterval(() => ctx.heartbeat({ bytes: Object.fromEntries(bytes) }), 1000);
  try {
    return await eachVm(runtime, req.cluster, req.vms, (record) =>
      saveOne(runtime, req, record, ctx.cancellationSignal, (n) => {
        bytes.set(record.name, n);
        reportProgress(record.name, n, record.config.memoryMiB * 1024 * 1024);
      }),
    );
  } finally {
    clearInterval(beat);
  }
}

async function saveOne(
  runtime: HostRuntime,
  req: SaveRequest,
  record: VmRecord,
  signal: AbortSignal,
  onProgress: (bytes: number) => void,
): Promise<SavedState> {
  const file = storeLayout.stateFile(req.store, req.cluster, req.checkpointId, record.name);
  const sidecar = `${file}.json`;
  if (existsSync(file) && existsSync(sidecar)) {
    const done = savedSidecarSchema.safeParse(JSON.parse(readFileSync(sidecar, 'utf8')));
    if (done.success && done.data.runId === req.runId && statSync(file).size === done.data.size) {
      const { runId: _run, ...saved } = done.data;
      return { name: record.name, file, ...saved };
    }
  }
  runtime.watchdog.check(record, req.checkpointId, req.runId);
  const qmp = await runtime.qmp(record);
  // From here to the end of the migration the VM must not run a moment (QMP events reach every monitor).
  const stopWatching = new AbortController();
  let resumedMeanwhile = false;
  qmp.waitForEvent('RESUME', undefined, 24 * 3600_000, stopWatching.signal).then(
    () => (resumedMeanwhile = true),
    () => undefined,
  );
  try {
    return await migrateToFile(runtime, req, record, qmp, signal, onProgress, () => resumedMeanwhile);
  } finally {
    stopWatching.abort();
  }
}

/** A save starts only from `paused`. */
async function requireSavable(qmp: QmpClient, vm: string): Promise<void> {
  const { status } = await qmp.command('query-status');
  if (status === 'postmigrate') {
    // An earlier attempt's migration finished but its file was never completed. QEMU refuses to
    // migrate a VM in this state, and running it to leave the state would break the cut: give up.
    throw ApplicationFailure.nonRetryable(`VM ${vm} was left in postmigrate by an interrupted save; this checkpoint cannot be completed`, 'SaveInterrupted');
  }
  if (status !== 'paused') {
    throw ApplicationFailure.nonRetryable(`VM ${vm} is ${status} before its save, not paused: it was resumed outside the checkpoint`, 'VmNotPaused');
  }
}

async function migrateToFile(
  runtime: HostRuntime,
  req: SaveRequest,
  record: VmRecord,
  qmp: QmpClient,
  signal: AbortSignal,
  onProgress: (bytes: number) => void,
  ranMeanwhile: () => boolean,
): Promise<SavedState> {
  const file = storeLayout.stateFile(req.store, req.cluster, req.checkpointId, record.name);
  const sidecar = `${file}.json`;
  await requireSavable(qmp, record.name);
  const before = await qmp.command('query-migrate');
  if (before.status === 'active' || before.status === 'setup') {
    await qmp.command('migrate_cancel');
    await qmp.waitForEvent('MIGRATION', (e) => ['cancelled', 'failed'].includes(String((e.data as { status?: string }).status)), 10_000).catch(() => undefined);
  }
  const partial = `${file}.partial`;
  await rm(partial, { force: true });
  const socket = join(runtime.registry.vmDir(record.cluster, record.name), 'save.sock');
  const receiver = new StateReceiver(socket, partial, { onProgress, signal, ...(req.compression ? { codec: req.compression } : {}) });
  await receiver.start();
  try {
    // The checkpoint may have been abandoned (and its folder removed) while we got here.
    runtime.watchdog.check(record, req.checkpointId, req.runId);
  } catch (err) {
    receiver.abort(err);
    await rm(partial, { force: true });
    throw err;
  }
  const startedAt = hostNow();
  const finished = qmp.waitForEvent(
    'MIGRATION',
    (e) => ['completed', 'failed', 'cancelled'].includes(String((e.data as { status?: string }).status)),
    24 * 3600_000,
  );
  finished.catch(() => undefined);
  try {
    await testHook('save:before-migrate', record.name);
    await qmp.command('migrate', { uri: `unix:${socket}` });
  } catch (err) {
    receiver.abort(err);
    await rm(partial, { force: true });
    throw err;
  }
  let result;
  try {
    const [transfer, event] = await Promise.all([receiver.done, finished]);
    const status = String((event.data as { status?: string }).status);
    if (status !== 'completed') {
      const info = await qmp.command('query-migrate').catch(() => undefined);
      throw new Error(`saving VM ${record.name} failed: migration ${status}${info?.['error-desc'] ? `: ${info['error-desc']}` : ''}`);
    }
    result = transfer;
    await testHook('save:after-migration', record.name);
    // The state is the checkpoint's only if the VM stayed paused all along and the checkpoint still holds it.
    if (ranMeanwhile()) throw ApplicationFailure.nonRetryable(`VM ${record.name} ran during its save: it was resumed outside the checkpoint`, 'VmNotPaused');
    await requirePaused(qmp, record.name, 'after its save', ['postmigrate']);
    runtime.watchdog.check(record, req.checkpointId, req.runId);
  } catch (err) {
    receiver.abort(err);
    await qmp.command('migrate_cancel').catch(() => undefined); // best effort: QEMU may be gone
    await rm(partial, { force: true });
    throw storeFullIsFinal(err);
  }
  const finishedAt = hostNow();
  await rename(partial, file);
  fsyncDir(dirname(file));
  const compressed = req.compression ? { codec: req.compression, rawSize: result.rawSize ?? 0 } : {};
  const saved = { size: result.size, sha256: result.sha256, startedAt, finishedAt, ...compressed };
  await writeFileAtomic(sidecar, JSON.stringify({ runId: req.runId, ...saved }));
  onProgress(result.size);
  return { name: record.name, file, ...saved };
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
  await until(barrierTime(runtime, req.notBefore));
  const outcomes = await Promise.allSettled(
    req.vms.map(async (name, i): Promise<VmTimestamp> => {
      const session = sessions[i];
      if (!session || session.status === 'rejected') throw session?.reason ?? new Error('no QMP session');
      const qmp = session.value;
      if (req.abandon) {
        const { status } = await qmp.command('query-status');
        if (status === 'inmigrate') throw new Error('it is still waiting for its state');
        // A save may still be running: stop it first, or cont would turn it into a live migration that
        // keeps writing while the guest runs.
        const migration = await qmp.command('query-migrate');
        if (migration.status === 'active' || migration.status === 'setup') await qmp.command('migrate_cancel');
      }
      await testHook('resume:before-cont', name);
      await qmp.command('cont'); // a no-op on a running VM
      const record = checkpointId ? ours(name) : undefined;
      if (record && checkpointId) runtime.watchdog.release(record, checkpointId);
      return { name, at: hostNow(), receivedAt };
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

/**
 * A full store (or quota) is not worth a retry, and a retry would hide it: QEMU may have finished sending
 * into the socket meanwhile, and the next attempt would only see a VM left in postmigrate.
 */
function storeFullIsFinal(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return err;
  return ApplicationFailure.nonRetryable(err instanceof Error ? err.message : String(err), 'StoreFull');
}
