// What a restart decides, as pure functions of the manifest, the request and the hosts' answers: where
// each VM goes, which hosts must confirm the old VMs are gone (and which may be unreachable), what each
// host launches and loads, and the workflow's result. No I/O and no workflow state here.
import { ApplicationFailure } from '@temporalio/workflow';
import type { Manifest } from '../common/manifest';
import type { ResolvedVm } from '../common/spec';
import { spread } from '../common/stats';
import type { PhaseClock } from './checkpoint-record';
import type { VmTimestamp } from '../activities/host/types';
import { groupByHost, type HostOutcome } from './barriers';
import { reasonOf } from './validate';

export interface RestartResult {
  cluster: string;
  checkpointId: string;
  /** Restore time: start of the launch phase to the last VM resumed. */
  restoreMs: number;
  resumeSkewMs: number;
  phases: Record<string, { start: number; end?: number }>;
  vms: Array<{ name: string; host: string; loadedAt: number; resumedAt: number }>;
  /** Old hosts that could not be reached (allowed only for hosts remapped away). */
  unreachableHosts: string[];
}

/** What the restart asks for, as far as placement goes. */
export interface PlacementRequest {
  hostMap: Record<string, string>;
  unreachable: string[];
}

/** VM → the host it comes back on (its manifest host, remapped), and host → its VMs; refuses a bad map. */
export function placementOf(manifest: Manifest, request: PlacementRequest): { placement: Record<string, string>; targets: Map<string, string[]> } {
  const manifestHosts = new Set(manifest.vms.map((vm) => vm.host));
  for (const from of Object.keys(request.hostMap)) {
    if (!manifestHosts.has(from)) {
      throw ApplicationFailure.nonRetryable(
        `--host ${from}=${request.hostMap[from]}: checkpoint ${manifest.checkpointId} has no VMs on host ${from} (hosts: ${[...manifestHosts].join(', ')})`,
        'InvalidInput',
      );
    }
  }
  const placement = Object.fromEntries(manifest.vms.map((vm) => [vm.name, request.hostMap[vm.host] ?? vm.host]));
  const targets = groupByHost(placement);
  const deadTargets = request.unreachable.filter((h) => targets.has(h));
  if (deadTargets.length) {
    throw ApplicationFailure.nonRetryable(`VMs would be placed on unreachable host(s) ${deadTargets.join(', ')}: remap them with hostMap`, 'InvalidInput');
  }
  return { placement, targets };
}

/** Every host that may still run the cluster's VMs (where it ran, where the checkpoint had them, the targets), less the known-dead ones. */
export function hostsToClear(manifest: Manifest, oldPlacement: Record<string, string>, targets: Map<string, string[]>, unreachable: string[]): string[] {
  const candidates = new Set([...Object.values(oldPlacement), ...manifest.vms.map((vm) => vm.host), ...targets.keys()]);
  for (const host of unreachable) candidates.delete(host);
  return [...candidates];
}

/**
 * The stop-old outcome: the hosts that could not be reached, which is allowed only for hosts whose VMs were
 * remapped away; any other failure refuses the restart.
 */
export function unreachableAfterStopOld(outcomes: Array<HostOutcome<unknown>>, hostMap: Record<string, string>): string[] {
  const remappedAway = new Set(Object.keys(hostMap).filter((h) => hostMap[h] !== h));
  const unreachable: string[] = [];
  for (const r of outcomes) {
    if (r.ok) continue;
    const why = reasonOf(r.error);
    const timedOut = /schedule.?to.?start|timed? ?out/i.test(why);
    if (timedOut && remappedAway.has(r.host)) {
      unreachable.push(r.host);
      continue;
    }
    throw ApplicationFailure.nonRetryable(timedOut ? `host ${r.host} is unreachable (${why}); remap its VMs with --host ${r.host}=<other>` : why, 'StopOldFailed');
  }
  return unreachable;
}

/** What a host launches: each VM's recorded configuration, on its new host. */
export function vmsToLaunch(manifest: Manifest, host: string, vms: string[]): ResolvedVm[] {
  const byName = new Map(manifest.vms.map((vm) => [vm.name, vm]));
  return vms.map((vm): ResolvedVm => ({ ...(byName.get(vm)?.config as ResolvedVm), host }));
}

/** Per VM and disk: the frozen layer and its backing chain, top first (what the new overlay goes on). */
export function frozenDisksOf(manifest: Manifest): Record<string, Record<string, string[]>> {
  return Object.fromEntries(manifest.vms.map((vm) => [vm.name, Object.fromEntries(vm.disks.map((d) => [d.id, [d.frozen, ...d.backing]]))]));
}

/** Each VM's state file as the manifest records it (what a host checks and loads). */
export function stateOf(manifest: Manifest, vm: string): { size: number; sha256: string; codec?: Manifest['vms'][number]['state']['codec'] } {
  const state = manifest.vms.find((v) => v.name === vm)?.state;
  return { size: state?.size ?? 0, sha256: state?.sha256 ?? '', ...(state?.codec ? { codec: state.codec } : {}) };
}

export function restartResult(
  checkpoint: { cluster: string; checkpointId: string; placement: Record<string, string>; unreachableHosts: string[] },
  loaded: Map<string, VmTimestamp[]>,
  resumed: Map<string, VmTimestamp[]>,
  clock: PhaseClock,
): RestartResult {
  const loadedAt = new Map([...loaded.values()].flat().map((t) => [t.name, t.at]));
  const resumedAt = new Map([...resumed.values()].flat().map((t) => [t.name, t.at]));
  const resumeTimes = [...resumedAt.values()];
  const launchStartedAt = clock.phases['launch']?.start ?? 0;
  return {
    cluster: checkpoint.cluster,
    checkpointId: checkpoint.checkpointId,
    restoreMs: resumeTimes.length ? Math.max(...resumeTimes) - launchStartedAt : 0,
    resumeSkewMs: spread(resumeTimes),
    phases: clock.phases,
    vms: Object.keys(checkpoint.placement)
      .sort()
      .map((name) => ({ name, host: checkpoint.placement[name] ?? '', loadedAt: loadedAt.get(name) ?? 0, resumedAt: resumedAt.get(name) ?? 0 })),
    unreachableHosts: checkpoint.unreachableHosts,
  };
}
