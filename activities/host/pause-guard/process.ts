// The detached pause guard: a small process per host state folder, started by the host worker, that
// outlives it. It resumes any VM whose pause lease has run out — the backstop for the case the host
// worker's own watchdog cannot cover: the worker itself died (SIGKILL, OOM, host agent crash) while
// its VMs were paused for a checkpoint. It talks to each VM over the VM's second QMP monitor (the
// "guard" socket), so it never competes with the worker for the main one.
//
//   node dist/activities/host/pause-guard/process.js --state-dir DIR   (started by spawn.ts)
//
// One guard per state folder (pidfile + start time); it exits after a minute without any VM recorded.
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { QmpClient } from '../../qmp';
import { mayBePaused, readLease, writeLease } from './lease';
import { childLogger } from '../../../node/logger';
import { isAlive, processStartTime } from '../../../node/proc';
import { GUARD_PID_FILE as PID_FILE } from './spawn';
import { NAME_PATTERN } from '../../../common/names';
import { hostNow } from '../clock';
import { resumeAtDeadline } from './resume';

const POLL_MS = 250;
const IDLE_EXIT_MS = 60_000;

const recordSchema = z.object({ name: z.string(), cluster: z.string(), guardSocket: z.string(), pid: z.number(), startTime: z.string() });

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { 'state-dir': { type: 'string' } }, strict: true });
  const stateDir = values['state-dir'];
  if (!stateDir?.startsWith('/')) throw new Error('--state-dir (absolute) is required');
  const log = childLogger('pause-guard', { stateDir });
  const pidFile = join(stateDir, PID_FILE);
  try {
    const other = JSON.parse(readFileSync(pidFile, 'utf8')) as { pid: number; startTime: string };
    if (other.pid !== process.pid && isAlive(other)) {
      log.info({ other: other.pid }, 'another pause guard serves this folder; exiting');
      return;
    }
  } catch {
    // no pidfile: we are the one
  }
  writeFileSync(pidFile, JSON.stringify({ pid: process.pid, startTime: processStartTime(process.pid) }));
  log.info('pause guard running');
  let lastSeenVm = Date.now();
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      const vms = recordedVms(stateDir);
      if (vms.length) lastSeenVm = Date.now();
      else if (Date.now() - lastSeenVm > IDLE_EXIT_MS) {
        log.info('no VMs recorded for a minute; exiting');
        rmSync(pidFile, { force: true });
        process.exit(0);
      }
      for (const vm of vms) {
        const lease = readLease(vm.dir);
        // The worker's own watchdog goes first (at the deadline); the guard a moment later, still within the bound.
        if (!lease || !mayBePaused(lease) || hostNow() < lease.deadline + lease.guardAfterMs) continue;
        if (!isAlive({ pid: vm.record.pid, startTime: vm.record.startTime })) continue;
        await resume(vm.record.guardSocket, vm.record.name, log.child({ vm: vm.record.name, cluster: vm.record.cluster, checkpoint: lease.checkpointId }));
        // Only mark it if nobody changed the lease meanwhile (the worker may have released it).
        const now = readLease(vm.dir);
        if (now && mayBePaused(now) && now.checkpointId === lease.checkpointId) writeLease(vm.dir, { ...now, state: 'expired' });
      }
    } catch (err) {
      log.error({ err }, 'guard pass failed');
    } finally {
      busy = false;
    }
  };
  setInterval(() => void tick(), POLL_MS);
}

function recordedVms(stateDir: string): Array<{ dir: string; record: z.infer<typeof recordSchema> }> {
  const out = [];
  for (const cluster of safeList(stateDir)) {
    for (const vm of safeList(join(stateDir, cluster))) {
      const dir = join(stateDir, cluster, vm);
      try {
        const record = recordSchema.parse(JSON.parse(readFileSync(join(dir, 'vm.json'), 'utf8')));
        out.push({ dir, record });
      } catch {
        // no record (yet), or being rewritten
      }
    }
  }
  return out;
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir).filter((n) => NAME_PATTERN.test(n));
  } catch {
    return [];
  }
}

async function resume(socket: string, vm: string, log: ReturnType<typeof childLogger>): Promise<void> {
  log.error('pause bound passed and the host worker did not resume the VM: resuming it');
  const qmp = await QmpClient.connect(socket, { connectTimeoutMs: 2000, logger: log });
  try {
    // A VM still waiting for its state (a restore) is not ours to resume.
    const { status } = await qmp.command('query-status');
    if (status !== 'inmigrate') await resumeAtDeadline(qmp, vm, log);
    log.warn({ before: status }, 'VM resumed by the pause guard');
  } finally {
    await qmp.close();
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`pause guard failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
