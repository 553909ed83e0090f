// Facts about the machine a run was measured on (the figures mean little without them).
import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import os from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MiB, REPO } from './util';

const run = promisify(execFile);

export type MachineInfo = Awaited<ReturnType<typeof machineInfo>>;

/** The filesystem (device and type) a path is on. */
export function filesystemOf(path: string): string {
  try {
    return execFileSync('df', ['--output=source,fstype', path], { encoding: 'utf8' }).trim().split('\n').pop()?.trim() ?? '';
  } catch {
    return 'unknown';
  }
}

export async function machineInfo(store: string) {
  const cpus = os.cpus();
  const qemu = (await run('qemu-system-x86_64', ['--version'])).stdout.split('\n')[0] ?? '';
  let temporal = '';
  try {
    temporal = (await run(join(REPO, '.cache', 'temporal', 'temporal'), ['--version'])).stdout.trim();
  } catch {
    temporal = 'unknown';
  }
  // How fast one core hashes (the save path hashes every byte on a worker thread).
  const buf = Buffer.allocUnsafe(64 * MiB);
  randomFillSync(buf);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 4; i++) createHash('sha256').update(buf).digest();
  const sha256MiBps = (4 * 64) / (Number(process.hrtime.bigint() - t0) / 1e9);
  return {
    hostname: os.hostname(),
    cpuModel: cpus[0]?.model ?? 'unknown',
    cpus: cpus.length,
    memoryGiB: +(os.totalmem() / 1024 ** 3).toFixed(1),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    qemu,
    accel: 'tcg',
    temporalCli: temporal,
    storeFilesystem: filesystemOf(store),
    sha256MiBPerSecOneCore: +sha256MiBps.toFixed(0),
    loadAverageAtStart: os.loadavg().map((x) => +x.toFixed(2)),
  };
}
