// Barriers across hosts. Fan-out: one activity per host, all started at once; awaiting the returned promise
// is the barrier (every host has done its step). Timed barriers: the workflow tells every host the same
// instant to act at (pause, resume), scheduled just far enough ahead for the slowest host to have the
// request by then — learned from how late the hosts received the previous step.

/** Groups VM names by the host they run on. */
export function groupByHost(placement: Record<string, string>, vms?: Iterable<string>): Map<string, string[]> {
  const byHost = new Map<string, string[]>();
  for (const vm of vms ?? Object.keys(placement)) {
    const host = placement[vm];
    if (host === undefined) continue;
    const list = byHost.get(host) ?? [];
    list.push(vm);
    byHost.set(host, list);
  }
  for (const list of byHost.values()) list.sort();
  return byHost;
}

/** Runs `step` for every host concurrently; rejects with the first failure (the others keep running). */
export async function onEveryHost<T>(byHost: Map<string, string[]>, step: (host: string, vms: string[]) => Promise<T>): Promise<Map<string, T>> {
  const entries = [...byHost.entries()];
  const results = await Promise.all(entries.map(([host, vms]) => step(host, vms)));
  return new Map(entries.map(([host], i) => [host, results[i] as T]));
}

/** One host's outcome of a step that every host ran. */
export type HostOutcome<T> = { host: string; vms: string[]; ok: true; value: T } | { host: string; vms: string[]; ok: false; error: unknown };

/** Like onEveryHost, but waits for every host and reports each outcome (for compensation and cleanup). */
export async function onEveryHostSettled<T>(byHost: Map<string, string[]>, step: (host: string, vms: string[]) => Promise<T>): Promise<Array<HostOutcome<T>>> {
  const entries = [...byHost.entries()];
  const settled = await Promise.allSettled(entries.map(([host, vms]) => step(host, vms)));
  return settled.map((s, i) => {
    const [host, vms] = entries[i] as [string, string[]];
    return s.status === 'fulfilled' ? { host, vms, ok: true as const, value: s.value } : { host, vms, ok: false as const, error: s.reason };
  });
}

/**
 * How far ahead the pause is scheduled, so every host issues its stops at the same moment: as late as the
 * slowest host took to receive the prepare step, with room to spare. This delays the checkpoint, not the
 * guests (they run until the pause).
 */
export function pauseLead(sentAt: number, receivedAt: number[]): number {
  const slowest = receivedAt.length ? Math.max(...receivedAt) - sentAt : 0;
  return Math.max(100, Math.min(1000, Math.round(slowest * 2) + 50));
}

/**
 * How far ahead to schedule a timed barrier, from how late hosts received the previous one: late enough
 * for the slowest host, and not a moment longer (on resume, every millisecond is downtime).
 */
export function barrierLead(sentAt: number, receivedAt: number[]): number {
  const slowest = receivedAt.length ? Math.max(...receivedAt) - sentAt : 0;
  return Math.max(5, Math.min(250, Math.round(slowest * 1.25) + 15));
}
