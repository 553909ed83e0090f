// Inspecting and stopping VMs.
import { ApplicationFailure } from '@temporalio/activity';
import { terminate } from '../../node/proc';
import type { HostRuntime } from './runtime';
import type { EnsureGoneRequest, StopRequest, VmRef, VmStatus } from './types';

export async function inspectVms(runtime: HostRuntime, req: VmRef): Promise<VmStatus[]> {
  return Promise.all(
    req.vms.map(async (name): Promise<VmStatus> => {
      const record = runtime.registry.get(req.cluster, name);
      if (!record || record.host !== runtime.hostId) return { name, known: false, alive: false };
      const alive = runtime.alive(record);
      const base = { name, known: true, alive, pid: record.pid, consoleLog: record.consoleLog };
      if (!alive) return base;
      try {
        const qmp = await runtime.qmp(record);
        const { status } = await qmp.command('query-status', undefined, { timeoutMs: 5000 });
        return { ...base, qmpStatus: status };
      } catch (err) {
        return { ...base, error: err instanceof Error ? err.message : String(err) };
      }
    }),
  );
}

/** Ends VMs (quit, or SIGKILL as a crash would) and forgets them. Unknown VMs are skipped. */
export async function stopVms(runtime: HostRuntime, req: StopRequest): Promise<Array<{ name: string; wasRunning: boolean }>> {
  return Promise.all(
    req.vms.map(async (name) => {
      const record = runtime.registry.get(req.cluster, name);
      if (!record || record.host !== runtime.hostId) return { name, wasRunning: false };
      const wasRunning = runtime.alive(record);
      if (wasRunning) {
        if (req.mode === 'quit') {
          try {
            const qmp = await runtime.qmp(record);
            await qmp.command('quit', undefined, { timeoutMs: 5000 }).catch(() => undefined);
          } catch {
            // Fall through to the signal below.
          }
        }
        await terminate({ pid: record.pid, startTime: record.startTime }, req.mode === 'quit' ? 'SIGTERM' : 'SIGKILL', 5000);
      }
      await runtime.dropSession(req.cluster, name);
      runtime.watchdog.forget(record);
      runtime.registry.remove(req.cluster, name);
      return { name, wasRunning };
    }),
  );
}

/** Before a restore: the cluster's old processes must be gone. Refuses (or, with force, stops them). */
export async function ensureVmsGone(runtime: HostRuntime, req: EnsureGoneRequest): Promise<Array<{ name: string; stopped: boolean }>> {
  const running = req.vms
    .map((name) => runtime.registry.get(req.cluster, name))
    .filter((r): r is NonNullable<typeof r> => r !== undefined && r.host === runtime.hostId && runtime.alive(r));
  if (running.length && !req.force) {
    throw ApplicationFailure.nonRetryable(
      `VMs of cluster ${req.cluster} still run on host ${runtime.hostId}: ` +
        running.map((r) => `${r.name} (pid ${r.pid})`).join(', ') +
        '; stop them first, or restart with --force',
      'ClusterStillRunning',
    );
  }
  const stopped = new Set(running.map((r) => r.name));
  await stopVms(runtime, { cluster: req.cluster, vms: req.vms, mode: 'kill' });
  return req.vms.map((name) => ({ name, stopped: stopped.has(name) }));
}
