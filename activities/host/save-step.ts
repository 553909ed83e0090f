// The host's save step of a checkpoint: each paused VM's state into `<vm>.state` in the checkpoint folder,
// through the migration layer (saveToStream). Around it, what only the protocol knows: a file a retry of
// the same run already completed is taken as done (its sidecar record), the VM must stay paused from its
// check to the end of its migration, and the checkpoint must still hold the VM (its pause lease).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { z } from 'zod';
import { stateCodecSchema } from '../../common/spec';
import { storeLayout } from '../../common/store-layout';
import { fsyncDir, writeFileAtomic } from '../../node/fsutil';
import type { QmpClient } from '../qmp';
import { testHook } from '../test-hooks';
import { eachVm, requirePaused } from './checkpoint-steps';
import { hostNow } from './clock';
import { MigrationError, saveToStream } from './migration';
import type { VmRecord } from './registry';
import type { HostRuntime } from './runtime';
import type { SavedState, SaveRequest } from './types';

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

export async function saveVmStates(runtime: HostRuntime, req: SaveRequest, reportProgress: (vm: string, done: number, total: number) => void): Promise<SavedState[]> {
  const ctx = Context.current();
  const bytes = new Map<string, number>();
  const beat = setInterval(() => ctx.heartbeat({ bytes: Object.fromEntries(bytes) }), 1000);
  try {
    return await eachVm(runtime, req.cluster, req.vms, (record) =>
      saveVmState(runtime, req, record, ctx.cancellationSignal, (n) => {
        bytes.set(record.name, n);
        reportProgress(record.name, n, record.config.memoryMiB * 1024 * 1024);
      }),
    );
  } finally {
    clearInterval(beat);
  }
}

export async function saveVmState(
  runtime: HostRuntime,
  req: SaveRequest,
  record: VmRecord,
  signal: AbortSignal,
  onProgress: (bytes: number) => void,
): Promise<SavedState> {
  const file = storeLayout.stateFile(req.store, req.cluster, req.checkpointId, record.name);
  const done = completedEarlier(file, req.runId);
  if (done) return { name: record.name, file, ...done };
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
    return await saveToFile(runtime, req, record, qmp, { signal, onProgress, ranMeanwhile: () => resumedMeanwhile });
  } finally {
    stopWatching.abort();
  }
}

/** The save of this run whose result was lost (the sidecar says so and the file has its size). */
export function completedEarlier(file: string, runId: string): Omit<SavedState, 'name' | 'file'> | undefined {
  const sidecar = `${file}.json`;
  if (!existsSync(file) || !existsSync(sidecar)) return undefined;
  const done = savedSidecarSchema.safeParse(JSON.parse(readFileSync(sidecar, 'utf8')));
  if (!done.success || done.data.runId !== runId || statSync(file).size !== done.data.size) return undefined;
  const { runId: _run, ...saved } = done.data;
  return saved;
}

/** A save starts only from `paused`: the layer refuses any other run state, and this says what that means here. */
function notSavable(err: unknown): unknown {
  if (!(err instanceof MigrationError) || err.runState === undefined) return err;
  if (err.runState === 'postmigrate') {
    // An earlier attempt's migration finished but its file was never completed. QEMU refuses to
    // migrate a VM in this state, and running it to leave the state would break the cut: give up.
    return ApplicationFailure.nonRetryable(`VM ${err.vm} was left in postmigrate by an interrupted save; this checkpoint cannot be completed`, 'SaveInterrupted');
  }
  return ApplicationFailure.nonRetryable(`VM ${err.vm} is ${err.runState} before its save, not paused: it was resumed outside the checkpoint`, 'VmNotPaused');
}

interface SaveWatch {
  signal: AbortSignal;
  onProgress: (bytes: number) => void;
  /** True once the VM ran at any moment since its save began. */
  ranMeanwhile: () => boolean;
}

/** The migration into `<file>.partial`, the checks that make it the checkpoint's, then the file and its sidecar. */
async function saveToFile(runtime: HostRuntime, req: SaveRequest, record: VmRecord, qmp: QmpClient, watch: SaveWatch): Promise<SavedState> {
  const file = storeLayout.stateFile(req.store, req.cluster, req.checkpointId, record.name);
  const partial = `${file}.partial`;
  await rm(partial, { force: true });
  const result = await saveToStream(qmp, {
    vm: record.name,
    // Set by prepare, before the pause (background-snapshot off): not again inside it.
    configured: true,
    // A migration left by an earlier attempt whose worker died: its reader is gone.
    cancelStale: true,
    socketPath: join(runtime.registry.vmDir(record.cluster, record.name), 'save.sock'),
    file: partial,
    signal: watch.signal,
    onProgress: watch.onProgress,
    ...(req.compression ? { codec: req.compression } : {}),
    beforeMigrate: async () => {
      // The checkpoint may have been abandoned (and its folder removed) while we got here.
      runtime.watchdog.check(record, req.checkpointId, req.runId);
      await testHook('save:before-migrate', record.name);
    },
  }).catch((err: unknown) => {
    throw storeFullIsFinal(notSavable(err));
  });
  try {
    await testHook('save:after-migration', record.name);
    // The state is the checkpoint's only if the VM stayed paused all along and the checkpoint still holds it.
    if (watch.ranMeanwhile()) throw ApplicationFailure.nonRetryable(`VM ${record.name} ran during its save: it was resumed outside the checkpoint`, 'VmNotPaused');
    await requirePaused(qmp, record.name, 'after its save', ['postmigrate']);
    runtime.watchdog.check(record, req.checkpointId, req.runId);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
  const finishedAt = hostNow();
  await rename(partial, file);
  fsyncDir(dirname(file));
  const compressed = req.compression ? { codec: req.compression, rawSize: result.rawSize ?? 0 } : {};
  const saved = { size: result.size, sha256: result.sha256, startedAt: result.startedAtMs, finishedAt, ...compressed };
  await writeFileAtomic(`${file}.json`, JSON.stringify({ runId: req.runId, ...saved }));
  watch.onProgress(result.size);
  return { name: record.name, file, ...saved };
}

/**
 * A full store (or quota) is not worth a retry, and a retry would hide it: QEMU may have finished sending
 * into the socket meanwhile, and the next attempt would only see a VM left in postmigrate.
 */
function storeFullIsFinal(err: unknown): unknown {
  const cause = err instanceof MigrationError ? err.cause : err;
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return err;
  return ApplicationFailure.nonRetryable(err instanceof Error ? err.message : String(err), 'StoreFull');
}
