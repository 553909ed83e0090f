// A small protected cluster for the protection tests: a 2-node token ring (one VM per host) and a VM that
// writes a self-checking journal to its virtio disk (so every checkpoint adds a disk layer with data),
// plus helpers to read disk chains and to verify a journal disk offline.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestBed, guestImageDir } from '../../harness/testbed';
import { readConsole, ringErrors, ringTokens, waitForConsole } from '../../harness/console';
import type { ClusterSpecInput } from '../../common/spec';

export { journalErrors, journalWrites, verifyJournalDisk } from './journal';
export { assertJournalContinued, journalAtCheckpoint } from './continuation';

export const RING_VMS = [
  { name: 'ring0', host: 'a' },
  { name: 'ring1', host: 'b' },
];
export const JOURNAL_VM = { name: 'jnl', host: 'b' };

export function protectSpec(bed: TestBed, cluster: string, extra: Partial<ClusterSpecInput> = {}, hosts: string[] = ['a', 'b']): ClusterSpecInput {
  const image = guestImageDir();
  const ip = (i: number) => `10.77.0.${11 + i}`;
  const base = join(bed.dir, `${cluster}-journal-base.raw`);
  if (!existsSync(base)) execFileSync('qemu-img', ['create', '-q', '-f', 'raw', base, '64M']);
  const boot = (append: string) => ({ kernel: join(image, 'vmlinuz'), initrd: join(image, 'initrd.img'), append: `console=ttyS0 quiet panic=-1 init_on_free=1 ${append}` });
  return {
    cluster,
    store: bed.store,
    pauseBoundSeconds: 30,
    hosts: Object.fromEntries(hosts.map((h) => [h, {}])),
    vms: [
      ...RING_VMS.map((vm, i) => ({
        name: vm.name,
        host: vm.host,
        memoryMiB: 96,
        boot: boot(`vccr.ip=${ip(i)}/24 vccr.run=ring vccr.args=--id,${i},--nodes,2,--listen,7000,--next,${ip((i + 1) % 2)}:7000,--delay-ms,20,--stall-sec,60`),
        nics: [{ id: 'net0', tap: bed.network?.taps[i] ?? `tap${i}` }],
        ...(bed.network ? { netns: bed.network.name } : {}),
      })),
      {
        name: JOURNAL_VM.name,
        host: JOURNAL_VM.host,
        memoryMiB: 96,
        boot: boot('vccr.run=journal vccr.args=write,--dev,/dev/vda,--delay-ms,50'),
        disks: [{ id: 'data', image: base, format: 'raw' }],
      },
    ],
    ...extra,
  };
}

export async function waitUntilRunning(bed: TestBed, cluster: string, placement: Record<string, string>): Promise<void> {
  await Promise.all(
    Object.entries(placement).map(([vm, host]) =>
      waitForConsole(bed.consoleLog(host, cluster, vm), vm === JOURNAL_VM.name ? /^JOURNAL WROTE seq=10$/m : /(?:^RING TOKEN .*\n){5}/m, { timeoutMs: 240_000 }),
    ),
  );
}

/** The chain QEMU would open under `top` (qcow2 headers), top first. */
export function headerChain(top: string): string[] {
  const out = execFileSync('qemu-img', ['info', '-U', '--backing-chain', '--output=json', top], { encoding: 'utf8' });
  return (JSON.parse(out) as Array<{ filename: string }>).map((i, idx) => (idx === 0 ? top : i.filename));
}

/** The running chain of a VM's disk as its host recorded it (chain.json). */
export function runningChain(store: string, cluster: string, vm: string, disk: string): string[] {
  const c = JSON.parse(readFileSync(join(store, cluster, '_disks', vm, disk, 'chain.json'), 'utf8')) as { active: string; backing: string[] };
  return [c.active, ...c.backing];
}

/** The ring nodes print tokens and no error since the console offset `from`. */
export async function assertRingAlive(bed: TestBed, cluster: string, placement: Record<string, string>): Promise<void> {
  await Promise.all(
    RING_VMS.map(async (vm) => {
      const path = bed.consoleLog(placement[vm.name] ?? vm.host, cluster, vm.name);
      const from = readConsole(path).length;
      await waitForConsole(path, /(?:^RING TOKEN .*\n){3}/m, { from, timeoutMs: 90_000 });
      const text = readConsole(path);
      assert.deepEqual(ringErrors(text.slice(text.lastIndexOf('=== vccr:'))), [], `${vm.name}: no ring error`);
      assert.ok(ringTokens(text).length > 0);
    }),
  );
}
