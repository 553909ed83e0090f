// The MPI test cluster (one rank per VM on the bed's private network) and the checksum vccr-mpi-check
// prints on success, computed independently from guest/README.md's definition.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { guestImageDir, type TestBed } from '../../harness/testbed';
import { readConsole, waitForConsole } from '../../harness/console';
import type { ClusterSpecInput } from '../../common/spec';
import type { Manifest } from '../../common/manifest';
import { consoleAtPause, sinceRestoreFrom } from '../../harness/ring';

/** Three ranks on two hosts. */
export const MPI_VMS = [
  { name: 'mpi0', host: 'a' },
  { name: 'mpi1', host: 'b' },
  { name: 'mpi2', host: 'a' },
];

/** A cluster running the self-checking MPI job across `vms` (VM i gets 10.77.0.(11+i) on tap i). */
export function mpiSpec(bed: TestBed, cluster: string, vms: Array<{ name: string; host: string }>, iterations: number, extra: Partial<ClusterSpecInput> = {}): ClusterSpecInput {
  const image = guestImageDir();
  const ips = vms.map((_, i) => `10.77.0.${11 + i}`);
  return {
    cluster,
    store: bed.store,
    pauseBoundSeconds: 60,
    hosts: Object.fromEntries([...new Set(vms.map((v) => v.host))].map((h) => [h, {}])),
    vms: vms.map((vm, i) => ({
      name: vm.name,
      host: vm.host,
      memoryMiB: 256,
      boot: {
        kernel: join(image, 'vmlinuz'),
        initrd: join(image, 'initrd-mpi.img'),
        append: [
          'console=ttyS0 quiet panic=-1 init_on_free=1',
          `vccr.ip=${ips[i]}/24 vccr.run=mpi`,
          `vccr.args=--node,${i},${ips.map((ip) => `--host,${ip}`).join(',')},--,--iterations,${iterations},--sleep-ms,200`,
        ].join(' '),
      },
      nics: [{ id: 'net0', tap: bed.network?.taps[i] ?? '' }],
      netns: bed.network?.name,
    })),
    ...extra,
  };
}

/** The iterations rank 0 reported (MPI ITER k/n ok), in order. */
export const mpiIterations = (text: string) => [...text.matchAll(/^MPI ITER (\d+)\/\d+ ok$/gm)].map((m) => Number(m[1]));

/** The last iteration rank 0 had reported when the checkpoint paused it. */
export function mpiIterationAtCheckpoint(manifest: Manifest): number {
  const rank0 = manifest.vms.find((v) => v.name === 'mpi0');
  assert.ok(rank0?.console, 'the manifest records rank 0 console');
  return mpiIterations(consoleAtPause(rank0).text).at(-1) ?? 0;
}

/**
 * After a restore from `checkpointId`: the job goes on from the iteration after the checkpoint, without an
 * MPI error or relaunch, and finishes with the independently computed checksum. Returns its last lines.
 */
export async function assertMpiFinishedFrom(rank0: string, manifest: Manifest, iterations: number): Promise<string> {
  const atCheckpoint = mpiIterationAtCheckpoint(manifest);
  const restoredFrom = readConsole(rank0).lastIndexOf('=== vccr: restoring');
  const done = await waitForConsole(rank0, /^MPI RESULT (OK|FAIL).*$/m, { from: restoredFrom, timeoutMs: 600_000 });
  await waitForConsole(rank0, /^VCCR-WORKLOAD-EXIT code=\d+$/m, { from: restoredFrom, timeoutMs: 60_000 });
  const after = sinceRestoreFrom(manifest, 'mpi0', rank0);
  assert.doesNotMatch(after, /^MPI (ERROR|LAUNCH)/m, 'no MPI error and no relaunch after the restore');
  assert.equal(mpiIterations(after)[0], atCheckpoint + 1, 'the job continues from the iteration after the checkpoint');
  assert.equal(done[0], `MPI RESULT OK checksum=${expectedChecksum(3, iterations, 4096)}`);
  assert.match(after, /^VCCR-WORKLOAD-EXIT code=0$/m);
  return after.split('\n').filter((l) => l.startsWith('MPI')).slice(-2).join(' | ');
}

const M64 = (1n << 64n) - 1n;
const MAGIC = 0x564d5049424c4b31n;

function splitmix64(x: bigint): bigint {
  let z = (x + 0x9e3779b97f4a7c15n) & M64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
  return z ^ (z >> 31n);
}

/** FNV-1a-64 of the block `sender` sends in iteration k (header and payload, little-endian u64s). */
function blockChecksum(sender: bigint, k: bigint, words: number): bigint {
  const buf = Buffer.alloc((4 + words) * 8);
  [MAGIC, sender, k, BigInt(words)].forEach((v, i) => buf.writeBigUInt64LE(v, i * 8));
  for (let j = 0; j < words; j++) {
    buf.writeBigUInt64LE(splitmix64((sender << 48n) ^ (k << 20n) ^ BigInt(j) ^ 0x5643435200000000n), (4 + j) * 8);
  }
  // 64-bit FNV-1a with two 32-bit halves (BigInt per byte would take seconds).
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  for (const b of buf) {
    lo = (lo ^ b) >>> 0;
    // multiply (hi:lo) by the FNV prime 0x100000001b3 = 2^40 + 0x1b3, mod 2^64
    const loMul = lo * 0x1b3;
    const carry = Math.floor(loMul / 0x100000000);
    const newLo = loMul >>> 0;
    hi = (hi * 0x1b3 + carry + ((lo << 8) >>> 0)) >>> 0; // lo * 2^40 contributes lo << 8 to the high word
    lo = newLo;
  }
  return (BigInt(hi) << 32n) | BigInt(lo);
}

export function expectedChecksum(ranks: number, iterations: number, words: number): string {
  const p = BigInt(ranks);
  const mix = (a: bigint, k: bigint, s: bigint, c: bigint): bigint => splitmix64(a ^ splitmix64(k ^ splitmix64(s ^ splitmix64(c))));
  const blocks = new Map<string, bigint>();
  let checksum = 0n;
  for (let q = 0n; q < p; q++) {
    const from = (q + p - 1n) % p;
    let acc = 0n;
    for (let k = 1n; k <= BigInt(iterations); k++) {
      const key = `${from}/${k}`;
      const c = blocks.get(key) ?? blockChecksum(from, k, words);
      blocks.set(key, c);
      const sum = (k * k * ((p * (p + 1n)) / 2n) + (p * (p - 1n)) / 2n) & M64;
      acc = mix(acc, k, sum, c);
    }
    checksum = splitmix64(checksum ^ acc);
  }
  return checksum.toString(16).padStart(16, '0');
}


/**
 * The MPI suites' scenario: the job (on `bed`, hosts a and b) is checkpointed mid-run (`live` or stop mode),
 * runs on, every VM is killed, the cluster restarts from the checkpoint and the job finishes correctly.
 * Returns lines for the test's diagnostics.
 */
export async function checkpointMpiMidRun(bed: TestBed, cluster: string, iterations: number, live: boolean): Promise<string[]> {
  await bed.vccr.up(mpiSpec(bed, cluster, MPI_VMS, iterations));
  const rank0 = bed.consoleLog('a', cluster, 'mpi0');
  await waitForConsole(rank0, /^MPI ITER 15\/\d+ ok$/m, { timeoutMs: 300_000 });

  const result = await bed.vccr.checkpoint(cluster, live ? { live: true } : {});
  assert.ok('downtimeMs' in result);
  const { manifest } = await bed.vccr.checkpoints.show(cluster, result.checkpointId);
  assert.equal(manifest.mode, live ? 'live' : 'stop');
  const atCheckpoint = mpiIterationAtCheckpoint(manifest);
  assert.ok(atCheckpoint > 0 && atCheckpoint < iterations, `checkpointed mid-run (iteration ${atCheckpoint} of ${iterations})`);

  // The job goes on after the checkpoint; then the whole cluster dies.
  await waitForConsole(rank0, new RegExp(`^MPI ITER ${atCheckpoint + 10}/\\d+ ok$`, 'm'), { timeoutMs: 120_000 });
  assert.equal((await bed.killAllVms()).length, 3);

  await bed.vccr.restart(cluster, { checkpointId: result.checkpointId });
  return [
    `${live ? 'live' : 'stop'} checkpoint of the MPI cluster: downtime ${result.downtimeMs} ms, ${result.totalBytes} bytes`,
    `after the restore: ${await assertMpiFinishedFrom(rank0, manifest, iterations)}`,
  ];
}
