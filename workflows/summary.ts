// One-line summaries on activity calls: the Web UI shows them in a workflow's timeline and event history
// ("pause vm0, vm2 on host a"), so a person can follow an operation without knowing our activity names.
// A summary lives in the command's user metadata only: adding or changing one never breaks replay.
import { storeLayout } from '../common/store-layout';

type SummarizableActivity = (...args: never[]) => Promise<unknown>;
interface WithOptions {
  executeWithOptions(options: { summary: string }, args: unknown[]): Promise<unknown>;
}

/**
 * The same activity proxy (from proxyActivities or proxyLocalActivities), each call made with `summary`:
 *   withSummary(hosts(host).quick, `pause ${vmList(vms)} on host ${host}`).pauseVms({ ... })
 */
export function withSummary<T extends { [K in keyof T]: SummarizableActivity }>(activities: T, summary: string): T {
  return new Proxy(activities, {
    get(target, name) {
      const activity = Reflect.get(target, name) as Partial<WithOptions> | undefined;
      if (typeof activity?.executeWithOptions !== 'function') return activity;
      const call = activity.executeWithOptions.bind(activity);
      return (...args: unknown[]) => call({ summary }, args);
    },
  });
}

/** "vm0, vm2" — or, for many VMs, "vm0, vm1, vm2, vm3 … (16 VMs)", so a summary stays one short line. */
export function vmList(vms: readonly string[], max = 4): string {
  if (vms.length <= max) return vms.join(', ');
  return `${vms.slice(0, max).join(', ')} … (${vms.length} VMs)`;
}

/** "ck-1/vm0.state, vm2.state" */
export function stateFiles(checkpointId: string, vms: readonly string[]): string {
  return `${checkpointId}/${vmList(vms.map(storeLayout.stateFileName))}`;
}

/** 51498390 → "49.1 MiB" */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}
