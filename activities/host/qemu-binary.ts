// Facts about the host's QEMU binary, read once per worker: its version (recorded with every checkpoint)
// and what the moving machine aliases (pc, q35) resolve to, so a VM is always launched — and later
// restored — with a versioned machine type.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface QemuBinaryInfo {
  path: string;
  version: string;
  machineAliases: Record<string, string>;
}

export async function probeQemuBinary(path: string): Promise<QemuBinaryInfo> {
  let versionOut: string;
  let machinesOut: string;
  try {
    versionOut = (await run(path, ['--version'])).stdout;
    machinesOut = (await run(path, ['-machine', 'help'])).stdout;
  } catch (err) {
    throw new Error(`cannot run QEMU at ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const version = /version\s+(\S+)/.exec(versionOut)?.[1];
  if (!version) throw new Error(`cannot read the version of ${path} from: ${versionOut.trim()}`);
  const machineAliases: Record<string, string> = {};
  for (const line of machinesOut.split('\n')) {
    const m = /^(\S+)\s+.*\(alias of (\S+)\)\s*$/.exec(line);
    if (m?.[1] && m[2]) machineAliases[m[1]] = m[2];
  }
  return { path, version, machineAliases };
}
