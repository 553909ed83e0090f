// What the Temporal Web UI shows about an operation before anyone opens its history: a one-line summary
// and markdown details (the VMs and their hosts, the mode, the store), given as the workflow's
// staticSummary / staticDetails when it is started. Pure: built from what the starter knows.
// Names and paths here have passed their schemas (no markdown or HTML characters can occur in them).

export interface OperationText {
  summary: string;
  details: string;
}

/** Where a cluster's VMs run (VM → host) and where its checkpoints go. */
export interface ClusterView {
  cluster: string;
  store: string;
  placement: Record<string, string>;
}

function hostsOf(placement: Record<string, string>): string[] {
  return [...new Set(Object.values(placement))].sort();
}

/** "4 VMs on a, b" */
function vmsOnHosts(placement: Record<string, string>): string {
  const n = Object.keys(placement).length;
  return `${n} VM${n === 1 ? '' : 's'} on ${hostsOf(placement).join(', ') || 'no host'}`;
}

function vmTable(placement: Record<string, string>, columns: Array<[string, (vm: string, host: string) => string]> = []): string {
  const head = ['VM', 'host', ...columns.map(([title]) => title)];
  const rows = Object.entries(placement)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([vm, host]) => [vm, host, ...columns.map(([, cell]) => cell(vm, host))]);
  return [head, head.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

export function launchText(view: ClusterView, vms: Record<string, { memoryMiB: number; vcpus: number; accel: string }>): OperationText {
  return {
    summary: `launch ${view.cluster} · ${vmsOnHosts(view.placement)}`,
    details:
      `**Launch** of cluster **${view.cluster}**: every VM is started on its host; if one cannot be, the others are stopped again.\n\n` +
      `${vmTable(view.placement, [
        ['memory', (vm) => `${vms[vm]?.memoryMiB ?? '?'} MiB`],
        ['vCPUs', (vm) => String(vms[vm]?.vcpus ?? '?')],
        ['accel', (vm) => vms[vm]?.accel ?? '?'],
      ])}\n\nCheckpoint store: \`${view.store}\``,
  };
}

export function checkpointText(view: ClusterView, checkpointId: string, mode: 'stop' | 'live'): OperationText {
  const how =
    mode === 'live'
      ? 'every VM is paused for an instant, its disks frozen and its RAM snapshotted; it runs again at once while its RAM is written (a consistent cut, checked from the hosts\' STOP/RESUME times)'
      : 'every VM is paused, its disks frozen and its state saved, then all are resumed together (a consistent cut)';
  return {
    summary: `checkpoint ${view.cluster} ${checkpointId} · ${vmsOnHosts(view.placement)} · ${mode}`,
    details:
      `**Checkpoint** \`${checkpointId}\` of cluster **${view.cluster}**, mode **${mode}**: ${how}.\n\n` +
      `${vmTable(view.placement, [['state file', (vm) => `\`${checkpointId}/${vm}.state\``]])}\n\n` +
      `Checkpoint folder: \`${view.store}/${view.cluster}/${checkpointId}/\``,
  };
}

export function restartText(
  view: ClusterView | undefined,
  cluster: string,
  options: { checkpointId?: string; hostMap: Record<string, string>; force: boolean; store?: string },
): OperationText {
  const from = options.checkpointId ?? 'the newest checkpoint';
  const remap = Object.entries(options.hostMap).map(([a, b]) => `${a}→${b}`);
  const target = view ? Object.fromEntries(Object.entries(view.placement).map(([vm, host]) => [vm, options.hostMap[host] ?? host])) : undefined;
  const parts = [`restart ${cluster} from ${from}`, target ? vmsOnHosts(target) : `record rebuilt from ${options.store ?? 'the store'}`];
  if (remap.length) parts.push(`hosts ${remap.join(', ')}`);
  if (options.force) parts.push('force');
  const table = view ? vmTable(view.placement, [['comes back on', (_vm, host) => options.hostMap[host] ?? host]]) : 'VMs and hosts: as recorded in the checkpoint\'s manifest.';
  return {
    summary: parts.join(' · '),
    details:
      `**Restart** of cluster **${cluster}** from \`${from}\`: the state files are verified, every VM is started paused ` +
      `from its recorded configuration, loaded, and all are resumed together.${options.force ? ' VMs still running are stopped first (force).' : ''}\n\n` +
      `${table}\n\nCheckpoint store: \`${options.store ?? view?.store ?? '?'}\``,
  };
}

export function shutdownText(view: ClusterView, mode: 'quit' | 'kill'): OperationText {
  return {
    summary: `down ${view.cluster} · ${vmsOnHosts(view.placement)} · ${mode}`,
    details: `**Shutdown** of cluster **${view.cluster}**: every VM is ${mode === 'kill' ? 'killed (SIGKILL)' : 'asked to quit'}.\n\n${vmTable(view.placement)}`,
  };
}

export function inspectText(view: ClusterView): OperationText {
  return {
    summary: `status ${view.cluster} · ${vmsOnHosts(view.placement)}`,
    details: `**Status** of cluster **${view.cluster}**: each host reports its VMs' processes and QMP run states (read-only).\n\n${vmTable(view.placement)}`,
  };
}

export function storeText(operation: 'list' | 'show' | 'verify' | 'delete', cluster: string, store: string | undefined, checkpointId?: string): OperationText {
  const what = {
    list: 'lists the committed and failed checkpoints',
    show: 'reads the manifest',
    verify: 're-reads every state file and checks its sha256',
    delete: 'deletes the checkpoint (disk layers other checkpoints need are kept), under the cluster lock',
  }[operation];
  const subject = checkpointId ? `checkpoint ${cluster} ${checkpointId}` : `checkpoints of ${cluster}`;
  return {
    summary: `${operation} ${subject}`,
    details: `**${operation[0]?.toUpperCase()}${operation.slice(1)}** ${checkpointId ? `\`${checkpointId}\` of` : 'checkpoints of'} cluster **${cluster}**: ${what}.\n\nCheckpoint store: \`${store ?? "the cluster record's"}\``,
  };
}

export function doctorText(view: ClusterView | undefined, hosts: string[], store: string | undefined): OperationText {
  const subject = view ? `${view.cluster} · ${vmsOnHosts(view.placement)}` : `hosts ${hosts.join(', ') || '(none)'}`;
  return {
    summary: `doctor ${subject}`,
    details:
      `**Preflight** (\`vccr doctor\`)${view ? ` of cluster **${view.cluster}**` : ''}: every host checks, through its own worker, QEMU, ` +
      'its accelerators, userfaultfd write-protect, the store, the VMs\' images, taps and namespaces; clocks are compared; ' +
      'a marker file written by each proves all see one store. Read-only: no VM is touched.\n\n' +
      `${view ? vmTable(view.placement) : `Hosts: ${hosts.join(', ')}`}\n\nCheckpoint store: \`${store ?? 'not checked'}\``,
  };
}
