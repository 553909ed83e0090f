// Starting the detached pause guard (process.ts) for a host state folder, once.
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { isAlive, processStartTime } from '../../../node/proc';

export const GUARD_PID_FILE = 'pause-guard.pid';
const GUARD_SCRIPT = join(__dirname, 'process.js');

/** Starts the guard for `stateDir` unless one is already running (called by the host worker; never waits). */
export function ensurePauseGuard(stateDir: string): void {
  const pidFile = join(stateDir, GUARD_PID_FILE);
  if (existsSync(pidFile)) {
    try {
      const { pid, startTime } = JSON.parse(readFileSync(pidFile, 'utf8')) as { pid: number; startTime: string };
      if (isAlive({ pid, startTime })) return;
    } catch {
      // unreadable: start a new one
    }
  }
  const log = openSync(join(stateDir, 'pause-guard.log'), 'a');
  const child = spawn(process.execPath, [GUARD_SCRIPT, '--state-dir', stateDir], { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.unref();
  // Recorded at once, so a second call a moment later finds this guard instead of starting another.
  const startTime = child.pid === undefined ? undefined : processStartTime(child.pid);
  if (child.pid !== undefined && startTime !== undefined) writeFileSync(pidFile, JSON.stringify({ pid: child.pid, startTime }));
}

