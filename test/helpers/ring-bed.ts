// The bed most end-to-end tests start from: hosts a and b, a tap per VM, a token-ring cluster launched
// through the workflows and every VM passing tokens.
import { TestBed, ringSpec, type RingOptions, type RingVm } from '../../harness/testbed';
import { waitForConsole } from '../../harness/console';
import type { ClusterSpecInput } from '../../common/spec';

/** The 3-node ring: vm0 and vm2 on host a, vm1 on host b (the token crosses hosts both ways). */
export const RING3: RingVm[] = [
  { name: 'vm0', host: 'a' },
  { name: 'vm1', host: 'b' },
  { name: 'vm2', host: 'a' },
];

/** The smallest ring whose token crosses hosts: vm0 on a, vm1 on b. */
export const RING2: RingVm[] = [
  { name: 'vm0', host: 'a' },
  { name: 'vm1', host: 'b' },
];

/** VM → host. */
export function placementOf(vms: RingVm[]): Record<string, string> {
  return Object.fromEntries(vms.map((v) => [v.name, v.host]));
}

export interface RingBedOptions extends RingOptions {
  /** RING TOKEN lines each VM must have printed before the tests start (default 5). */
  tokens?: number;
  /** Changes to the spec before the launch (e.g. stateCompression). */
  spec?: Partial<ClusterSpecInput>;
}

/** A bed with the ring `cluster` of `vms` up and passing tokens. */
export async function startRingBed(cluster: string, vms: RingVm[], options: RingBedOptions = {}): Promise<TestBed> {
  const { tokens = 5, spec, ...ring } = options;
  const bed = await TestBed.start({ hosts: ['a', 'b'], taps: vms.length });
  await bed.vccr.up({ ...ringSpec(bed, cluster, vms, ring), ...spec });
  const lines = new RegExp(`(?:^RING TOKEN .*\\n){${tokens}}`, 'm');
  for (const vm of vms) await waitForConsole(bed.consoleLog(vm.host, cluster, vm.name), lines, { timeoutMs: 120_000 });
  return bed;
}
