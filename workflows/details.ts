// The "current details" of an operation (setCurrentDetails): a short markdown the Web UI shows on the
// workflow's page while it runs and after — phase, bytes saved of total, each VM's state, phase times.
// A pure function of the progress state, so it is tested and changed without touching a workflow.
import type { ClusterState, OperationProgress } from '../common/messages';
import { formatBytes, vmList } from './summary';

/** Above this many VMs, the details count VMs per state instead of listing each one. */
const LIST_VMS_UP_TO = 12;

const BYTES_VERB: Partial<Record<OperationProgress['operation'], string>> = { checkpoint: 'saved', restart: 'loaded' };

export function renderDetails(progress: OperationProgress, now: number): string {
  const lines = [headline(progress)];
  const verb = BYTES_VERB[progress.operation];
  if (verb && progress.bytesTotal > 0) {
    const percent = Math.floor((progress.bytesDone / progress.bytesTotal) * 100);
    lines.push(`${verb} **${formatBytes(progress.bytesDone)} of ${formatBytes(progress.bytesTotal)}** (${percent} %)`);
  }
  lines.push('', ...vmLines(progress));
  const phases = phaseTimes(progress, now);
  if (phases) lines.push('', phases);
  return lines.join('\n');
}

function headline(p: OperationProgress): string {
  const what = `**${p.operation}${p.checkpointId ? ` ${p.checkpointId}` : ''}** of cluster **${p.cluster}**`;
  if (p.error !== undefined) return `${what} · **failed** (${p.phase}): ${p.error}`;
  return `${what} · phase **${p.phase}**`;
}

function vmLines(p: OperationProgress): string[] {
  const vms = Object.entries(p.vms).sort(([a], [b]) => a.localeCompare(b));
  if (vms.length <= LIST_VMS_UP_TO) {
    return vms.map(([name, vm]) => {
      const bytes = vm.bytesTotal > 0 ? ` (${formatBytes(vm.bytesDone)} of ${formatBytes(vm.bytesTotal)})` : '';
      return `- ${name} on host ${vm.host}: ${vm.state}${bytes}`;
    });
  }
  const counts = new Map<string, number>();
  for (const [, vm] of vms) counts.set(vm.state, (counts.get(vm.state) ?? 0) + 1);
  return [`- ${vms.length} VMs: ${[...counts].map(([state, n]) => `${n} ${state}`).join(', ')}`];
}

function phaseTimes(p: OperationProgress, now: number): string {
  const parts = Object.entries(p.phases)
    .filter(([name]) => name !== 'done')
    .map(([name, t]) => `${name} ${seconds((t.end ?? now) - t.start)}${t.end === undefined && name === p.phase ? ' …' : ''}`);
  return parts.length ? `phases: ${parts.join(' · ')}` : '';
}

function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms / 1000)} s`;
}

/** The cluster record's current details: status, where each VM runs, the lock, the last checkpoint. */
export function renderClusterDetails(state: ClusterState): string {
  const lines = [`cluster **${state.cluster}** · **${state.status}**${state.lastCheckpointId ? ` · last checkpoint **${state.lastCheckpointId}**` : ''}`];
  const lock = state.lock;
  lines.push(lock ? `busy: **${lock.operation}${lock.checkpointId ? ` ${lock.checkpointId}` : ''}** (${lock.workflowId})` : 'idle: no operation running');
  const byHost = new Map<string, string[]>();
  for (const [vm, host] of Object.entries(state.placement).sort(([a], [b]) => a.localeCompare(b))) byHost.set(host, [...(byHost.get(host) ?? []), vm]);
  if (byHost.size) lines.push('', ...[...byHost].sort(([a], [b]) => a.localeCompare(b)).map(([host, vms]) => `- host ${host}: ${vmList(vms, LIST_VMS_UP_TO)}`));
  const last = state.recent[state.recent.length - 1];
  if (last) lines.push('', `last operation: ${last.operation}${last.checkpointId ? ` ${last.checkpointId}` : ''} ${last.outcome}${last.detail ? ` (${last.detail})` : ''}`);
  return lines.join('\n');
}
