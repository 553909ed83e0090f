// The host's part of a checkpoint: prepare, pause, freeze disks, save state, resume. Each step takes all
// of this host's VMs at once and works on them in parallel; each is idempotent, so an activity retried
// after a worker crash finds what was already done and goes on.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { chmod, rm, rename, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { z } from 'zod';
import { stateCodecSchema } from '../../common/spec';
import { fsyncDir, writeFileAtomic } from '../../common/fsutil';
import { storeLayout } from '../../common/store-layout';
import { backingChain } from '../qmp';
import { writeChainRecord } from './disks';
import { consoleSize } from './launch';
import { StateReceiver } from './transfer';
import { ensurePauseGuard } from './guard';
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
  const receivedAt = Date.now();
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
  const receivedAt = Date.now();
  // Not behind runtime.exclusive(): the pause barrier is on the critical path, and stop is idempotent.
  const records = req.vms.map((vm) => runtime.requireVm(req.cluster, vm));
  ensurePauseGuard(runtime.registry.stateDir);
  // Everything that can be done before the stop is done first, so the stops themselves go out together.
  const qmps = await Promise.all(records.map((record) => runtime.qmp(record)));
  for (const record of records) runtime.watchdog.hold(record, req.checkpointId, req.pauseBoundMs);
  await until(req.notBefore);
  return Promise.all(
    records.map(async (record, i) => {
      await qmps[i]?.command('stop');
      const at = Date.now();
      const offset = consoleSize(record);
      return { name: record.name, at, receivedAt, ...(offset !== undefined ? { consoleOffset: offset } : {}) };
    }),
  );
}

/** Waits until the epoch ms `at` (a timed barrier: every host acts at the same moment). */
async function until(at: number | undefined): Promise<void> {
  const wait = at === undefined ? 0 : at - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}

export async function freezeDisks(runtime: HostRuntime, req: FreezeRequest): Promise<FrozenVm[]> {
  return eachVm(runtime, req.cluster, req.vms, async (record) => {
    runtime.watchdog.check(record, req.checkpointId);
    const qmp = await runtime.qmp(record);
    const blocks = await qmp.command('query-block');
    const frozen = [];
    const chains = [];
    for (const disk of record.disks) {
      const newActive = storeLayout.diskLayer(req.store, req.cluster, record.name, disk.id, `after-${req.checkpointId}`);
      const device = `drive-${disk.id}`;
      const current = blocks.find((b) => b.device === device)?.inserted;
      if (!current) throw new Error(`VM ${record.name} has no block device ${device}`);
      let frozenLayer: string;
      let backing: string[];
      if (current.file === newActive) {
        // Done by an earlier attempt whose result was lost: QEMU's chain is the truth.
        const chain = backingChain(current.image);
        frozenLayer = chain[1] ?? '';
        backing = chain.slice(2);
      } else {
        if (current.file !== disk.active) {
          throw new Error(`VM ${record.name} disk ${disk.id} runs on ${current.file}, but the record says ${disk.active}`);
        }
        await qmp.command('blockdev-snapshot-sync', { device, 'snapshot-file': newActive, format: 'qcow2' });
        frozenLayer = disk.active;
        backing = disk.backing;
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
    return { name: record.name, disks: frozen, at: Date.now() };
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
    if (done.success && statSync(file).size === done.data.size) return { name: record.name, file, ...done.data };
  }
  runtime.watchdog.check(record, req.checkpointId);
  const qmp = await runtime.qmp(record);
  const { status: runState } = await qmp.command('query-status');
  if (runState === 'postmigrate') {
    // An earlier attempt's migration finished but its file was never completed. QEMU refuses to
    // migrate a VM in this state, and running it to leave the state would break the cut: give up.
    throw ApplicationFailure.nonRetryable(
      `VM ${record.name} was left in postmigrate by an interrupted save; this checkpoint cannot be completed`,
      'SaveInterrupted',
    );
  }
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
    runtime.watchdog.check(record, req.checkpointId);
  } catch (err) {
    receiver.abort(err);
    await rm(partial, { force: true });
    throw err;
  }
  const startedAt = Date.now();
  const finished = qmp.waitForEvent(
    'MIGRATION',
    (e) => ['completed', 'failed', 'cancelled'].includes(String((e.data as { status?: string }).status)),
    24 * 3600_000,
  );
  finished.catch(() => undefined);
  try {
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
  } catch (err) {
    receiver.abort(err);
    await qmp.command('migrate_cancel').catch(() => undefined); // best effort: QEMU may be gone
    await rm(partial, { force: true });
    throw err;
  }
  const finishedAt = Date.now();
  await rename(partial, file);
  fsyncDir(dirname(file));
  const compressed = req.compression ? { codec: req.compression, rawSize: result.rawSize ?? 0 } : {};
  const saved = { size: result.size, sha256: result.sha256, startedAt, finishedAt, ...compressed };
  await writeFileAtomic(sidecar, JSON.stringify(saved));
  onProgress(result.size);
  return { name: record.name, file, ...saved };
}

/**
 * Resumes each VM on its own: one VM that cannot be resumed (its QEMU died, say) must not keep the others
 * paused. Never throws for a single VM; the report says which ones failed and why.
 */
export async function resumeVms(runtime: HostRuntime, req: ResumeRequest): Promise<ResumeReport> {
  const receivedAt = Date.now();
  const known = req.vms.map((vm) => runtime.registry.get(req.cluster, vm));
  const release = () => {
    if (!req.checkpointId) return;
    for (const record of known) if (record && record.host === runtime.hostId) runtime.watchdog.release(record, req.checkpointId);
  };
  // Abandoning: release the leases first, so a pause or save of this checkpoint that arrives late is refused.
  if (req.abandon) release();
  const sessions = await Promise.allSettled(req.vms.map(async (name) => runtime.qmp(runtime.requireVm(req.cluster, name))));
  await until(req.notBefore);
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
      await qmp.command('cont'); // a no-op on a running VM
      return { name, at: Date.now(), receivedAt };
    }),
  );
  if (!req.abandon) release();
  const report: ResumeReport = { resumed: [], failed: [] };
  outcomes.forEach((o, i) => {
    if (o.status === 'fulfilled') report.resumed.push(o.value);
    else report.failed.push({ name: req.vms[i] ?? '', reason: o.reason instanceof Error ? o.reason.message : String(o.reason) });
  });
  if (report.failed.length) runtime.log.error({ cluster: req.cluster, failed: report.failed }, 'VMs could not be resumed');
  return report;
}
