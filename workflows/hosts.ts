// Fan-out helpers: one activity per host, all started at once. Awaiting the returned promise is the barrier.

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

/** Like onEveryHost, but waits for every host and reports each outcome (for compensation and cleanup). */
export async function onEveryHostSettled<T>(
  byHost: Map<string, string[]>,
  step: (host: string, vms: string[]) => Promise<T>,
): Promise<Array<{ host: string; vms: string[]; ok: true; value: T } | { host: string; vms: string[]; ok: false; error: unknown }>> {
  const entries = [...byHost.entries()];
  const settled = await Promise.allSettled(entries.map(([host, vms]) => step(host, vms)));
  return settled.map((s, i) => {
    const [host, vms] = entries[i] as [string, string[]];
    return s.status === 'fulfilled' ? { host, vms, ok: true as const, value: s.value } : { host, vms, ok: false as const, error: s.reason };
  });
}
