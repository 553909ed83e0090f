// One look at a protected cluster (for workflows/watch.ts): every host worker is asked about its VMs with
// a short schedule-to-start timeout — a worker that does not pick the question up within it is not polling
// its queue — and every VM's answer is sorted into healthy or one of the failure kinds.
import { proxyActivities, type ActivityOptions } from '@temporalio/workflow';
import type { HostActivities } from '../activities/host';
import type { VmStatus } from '../activities/host/types';
import type { Failure, WatchSettings } from '../common/protection';
import { taskQueueOf, type ClusterSpec } from '../common/spec';
import { controllerActivities } from './proxies';
import { groupByHost, onEveryHostSettled } from './barriers';
import { reasonOf } from './validate';
import { vmList, withSummary } from './summary';

/** QMP run states of a VM that will not carry on by itself. */
const FAILED_STATES = new Set(['internal-error', 'guest-panicked', 'shutdown', 'io-error']);

function probeActivities(spec: ClusterSpec, host: string, settings: WatchSettings) {
  const options: ActivityOptions = {
    taskQueue: taskQueueOf(spec, host),
    scheduleToStartTimeout: `${settings.pickupSeconds} seconds`,
    startToCloseTimeout: '20 seconds',
    heartbeatTimeout: '5 seconds',
    // One attempt: the watch itself decides what a failure means, and looks again soon.
    retry: { maximumAttempts: 1 },
  };
  return proxyActivities<HostActivities>(options);
}

export function classify(host: string, status: VmStatus): Failure | undefined {
  if (!status.known) return { kind: 'vm-exited', host, vm: status.name, detail: `host ${host} has no record of it (its QEMU is gone)` };
  if (!status.alive) return { kind: 'vm-exited', host, vm: status.name, detail: `its QEMU process (pid ${status.pid ?? '?'}) exited` };
  if (status.error) return { kind: 'vm-unresponsive', host, vm: status.name, detail: `QMP does not answer: ${status.error}` };
  if (status.qmpStatus && FAILED_STATES.has(status.qmpStatus)) return { kind: 'vm-failed', host, vm: status.name, detail: `QMP status ${status.qmpStatus}` };
  return undefined;
}

export interface ProbeReport {
  failures: Failure[];
  /** Hosts whose worker answered (spares included). */
  reachable: Set<string>;
}

/**
 * Asks every host of the placement about its VMs, and every spare host whether it answers at all.
 * `hostsOnly`: only whether each host worker answers (while a planned operation may be stopping VMs).
 */
export async function probeCluster(cluster: string, spec: ClusterSpec, placement: Record<string, string>, settings: WatchSettings, hostsOnly = false): Promise<ProbeReport> {
  const byHost = groupByHost(placement);
  for (const spare of spec.spareHosts ?? []) if (!byHost.has(spare)) byHost.set(spare, []);
  const results = await onEveryHostSettled(byHost, (host, vms) =>
    withSummary(probeActivities(spec, host, settings), hostsOnly || !vms.length ? `is host ${host} there?` : `check ${vmList(vms)} on host ${host}`).inspectVms({ cluster, vms: hostsOnly ? [] : vms }),
  );
  const failures: Failure[] = [];
  const reachable = new Set<string>();
  for (const r of results) {
    if (r.ok) {
      reachable.add(r.host);
      for (const status of r.value) {
        const failure = classify(r.host, status);
        if (failure) failures.push(failure);
      }
    } else if (r.vms.length) {
      failures.push({ kind: 'host-unreachable', host: r.host, detail: await unreachableDetail(spec, r.host, r.error, settings) });
    }
  }
  return { failures, reachable };
}

async function unreachableDetail(spec: ClusterSpec, host: string, error: unknown, settings: WatchSettings): Promise<string> {
  const why = reasonOf(error);
  const notPolled = /schedule.?to.?start|timed? ?out/i.test(why);
  const base = notPolled ? `no worker picked up a check on ${taskQueueOf(spec, host)} within ${settings.pickupSeconds} s` : `its worker failed the check: ${why}`;
  const queue = await withSummary(controllerActivities().quick, `who polls ${taskQueueOf(spec, host)}?`)
    .hostQueuePollers({ taskQueue: taskQueueOf(spec, host) })
    .catch(() => undefined);
  const last = queue?.pollers.map((p) => p.lastAccessTime).filter((t): t is string => t !== undefined).sort().at(-1);
  return last ? `${base} (last poll seen by Temporal: ${last})` : base;
}

/** Kills whatever VMs of the cluster a host still runs (a host whose VMs were moved away while it was unreachable). */
export async function fenceHost(cluster: string, spec: ClusterSpec, host: string, settings: WatchSettings): Promise<string[]> {
  const stopped = await withSummary(probeActivities(spec, host, settings), `fence host ${host}: kill what ${cluster} still runs there`).stopVms({ cluster, vms: spec.vms.map((vm) => vm.name), mode: 'kill' });
  return stopped.filter((s) => s.wasRunning).map((s) => s.name);
}
