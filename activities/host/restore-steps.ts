// The host's part of a restart: check the state files, launch each VM waiting for its state, stream the
// state in. The cluster runs again once every VM of every host has loaded: with the store barrier, each host
// resumes its VMs as soon as it has read every host's "loaded" mark (store-barrier.ts); otherwise, or where a
// host did not, the workflow's resume step (resumeVms) does.
import { Context, ApplicationFailure } from '@temporalio/activity';
import { hostNow } from './clock';
import { join } from 'node:path';
import { sha256File } from '../../node/hasher';
import { launchVm } from './launch';
import { loadFromStream, resumeVm } from './migration';
import { StoreBarrier } from './store-barrier';
import { storeLayout } from '../../common/store-layout';
import { testHook } from '../test-hooks';
import type { HostRuntime } from './runtime';
import type { VmRecord } from './registry';
import type { LaunchedVm, LaunchRequest, LoadRequest, VerifyStateRequest, VmTimestamp } from './types';

export async function launchVms(runtime: HostRuntime, req: LaunchRequest): Promise<LaunchedVm[]> {
  return Promise.all(
    req.vms.map((vm) =>
      runtime.exclusive(vm.cluster, vm.name, () =>
        launchVm(runtime, {
          vm,
          store: req.store,
          operationId: req.operationId,
          ...(req.restore ? { restoringFrom: req.restore.checkpointId, frozen: req.restore.frozenDisks[vm.name] ?? {} } : {}),
        }),
      ),
    ),
  );
}

/** Reads every state file this host will load and compares it with the manifest, before anything starts. */
export async function verifyStateFiles(_runtime: HostRuntime, req: VerifyStateRequest): Promise<Array<{ vm: string; ok: true }>> {
  const ctx = Context.current();
  return Promise.all(
    req.files.map(async (f) => {
      const file = storeLayout.stateFile(req.store, req.cluster, req.checkpointId, f.vm);
      const sha256 = await sha256File(file, (bytes) => ctx.heartbeat({ vm: f.vm, bytes }));
      if (sha256 !== f.sha256) {
        throw ApplicationFailure.nonRetryable(`state file ${file} of VM ${f.vm} does not match its checksum`, 'ChecksumMismatch');
      }
      return { vm: f.vm, ok: true as const };
    }),
  );
}

export async function loadVmStates(
  runtime: HostRuntime,
  req: LoadRequest,
  reportProgress: (vm: string, done: number, total: number) => void,
): Promise<VmTimestamp[]> {
  const signal = Context.current().cancellationSignal;
  const receivedAt = hostNow();
  const loaded = await Promise.all(
    req.vms.map((vm) =>
      runtime.exclusive(req.cluster, vm.name, async () => {
        const before = await loadOne(runtime, req, vm, { signal, onProgress: (bytes) => reportProgress(vm.name, bytes, vm.size) });
        return { name: vm.name, at: hostNow(), before, receivedAt };
      }),
    ),
  );
  return req.resumeWhenAllLoaded ? resumeOnceAllLoaded(runtime, req, req.resumeWhenAllLoaded, loaded, signal) : loaded;
}

/**
 * How long a host whose VMs have all loaded reads the other hosts' marks before it leaves the resume to the
 * workflow's resume step (which cannot come before every host's load has ended anyway).
 */
const LOADED_MARKS_WINDOW_MS = 60_000;

/**
 * The store barrier of a restore: marks this host's VMs loaded and, once every host has marked, `cont`s
 * them. A VM not resumed here (the marks not all seen in time, the step cancelled, its cont failed) is left
 * to the workflow's resume step, which also reports why it could not run.
 */
async function resumeOnceAllLoaded(
  runtime: HostRuntime,
  req: LoadRequest,
  barrier: NonNullable<LoadRequest['resumeWhenAllLoaded']>,
  loaded: VmTimestamp[],
  signal: AbortSignal,
): Promise<VmTimestamp[]> {
  const until = hostNow() + LOADED_MARKS_WINDOW_MS;
  const marks = new StoreBarrier({ store: req.store, cluster: req.cluster, checkpointId: req.checkpointId, runId: barrier.runId }, runtime.hostId, barrier.hosts, loaded.length, until);
  for (const _ of loaded) marks.reached();
  const cancelled = new Promise<'cancelled'>((resolve) => signal.addEventListener('abort', () => resolve('cancelled'), { once: true }));
  if ((await Promise.race([marks.wait(until, loaded[0]?.name ?? ''), cancelled])) !== 'marked') return loaded;
  return Promise.all(
    loaded.map(async (entry): Promise<VmTimestamp> => {
      try {
        const qmp = await runtime.qmp(runtime.requireVm(req.cluster, entry.name));
        await testHook('resume:before-cont', entry.name);
        const resumed = await resumeVm(qmp, entry.name);
        return { ...entry, resumedAt: resumed.repliedAtMs };
      } catch (err) {
        runtime.log.warn({ cluster: req.cluster, vm: entry.name, err: err instanceof Error ? err.message : String(err) }, 'not resumed on the store barrier; the resume step will');
        return entry;
      }
    }),
  );
}

/** Streams one VM's state file into its QEMU (unless an earlier attempt did); returns its run state before. */
async function loadOne(
  runtime: HostRuntime,
  req: LoadRequest,
  vm: LoadRequest['vms'][number],
  transfer: { signal: AbortSignal; onProgress: (bytes: number) => void },
): Promise<string> {
  const record = runtime.requireVm(req.cluster, vm.name);
  const qmp = await runtime.qmp(record);
  const { status: before } = await qmp.command('query-status');
  if (before === 'paused' || before === 'running') {
    // Loaded by an earlier attempt whose result was lost — perhaps before it could record that (a
    // failed incoming migration ends QEMU, so a live VM past inmigrate has its state).
    if (record.restoringFrom !== undefined) runtime.registry.put(withoutRestoringFrom(record));
    return before;
  }
  if (before !== 'inmigrate') throw ApplicationFailure.nonRetryable(`VM ${vm.name} is ${before}, not waiting for its state`, 'NotIncoming');
  const file = storeLayout.stateFile(req.store, req.cluster, req.checkpointId, vm.name);
  await loadFromStream(qmp, {
    vm: vm.name,
    socketPath: join(runtime.registry.vmDir(req.cluster, vm.name), 'load.sock'),
    file,
    ...transfer,
    ...(vm.codec ? { codec: vm.codec } : {}),
    beforeSend: () => testHook('load:before-send', vm.name),
    checkSent: (sent) => {
      if (sent.sha256 !== vm.sha256 || sent.size !== vm.size) {
        throw ApplicationFailure.nonRetryable(`state file ${file} changed while it was loaded (checksum mismatch)`, 'ChecksumMismatch');
      }
    },
  });
  await testHook('load:before-record', vm.name);
  runtime.registry.put(withoutRestoringFrom(record));
  transfer.onProgress(vm.size);
  return before;
}

function withoutRestoringFrom(record: VmRecord): VmRecord {
  const { restoringFrom: _done, ...loaded } = record;
  return loaded;
}
