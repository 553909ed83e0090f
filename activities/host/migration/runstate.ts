// Pausing and resuming a VM around a migration, timed by QEMU itself: the STOP and RESUME events carry
// QEMU's own clock reading of the moment the vCPUs stopped or ran again, which is what a consistent cut
// is judged by (not when our command happened to be answered).
import type { QmpClient, QmpEvent, RunState } from '../../qmp';
import { hostNow, qemuEventTime } from '../clock';
import { MigrationError } from './errors';
import { qmpFailure } from './control';

export interface RunStateChange {
  /** query-status after the command. */
  status: RunState;
  /** Epoch ms (host clock): QEMU's event timestamp, or the reply's time if the VM was already in that state. */
  atMs: number;
  /** Epoch ms (host clock) when QEMU's reply to the command came. */
  repliedAtMs: number;
  /** 'event': this command changed the state; 'already': no event came, the VM was already there. */
  source: 'event' | 'already';
}

/** QEMU 7.2 emits STOP/RESUME before the reply; a QEMU that emits them later gets this much grace. */
const LATE_EVENT_GRACE_MS = 100;

/** `stop`, then confirm the VM is paused. Pausing a paused VM is a no-op (source 'already'). */
export async function pauseVm(qmp: QmpClient, vm: string): Promise<RunStateChange> {
  const change = await changeRunState(qmp, vm, 'stop', 'STOP');
  // finish-migrate/postmigrate are stopped too; anything else did not pause (e.g. it shut down).
  if (change.status !== 'paused' && change.status !== 'postmigrate') {
    throw new MigrationError(`did not pause: it is ${change.status}`, { vm, kind: 'wrong-state', runState: change.status });
  }
  return change;
}

/** `cont` (also valid from postmigrate, after a completed save), then confirm the VM runs. */
export async function resumeVm(qmp: QmpClient, vm: string): Promise<RunStateChange> {
  const change = await changeRunState(qmp, vm, 'cont', 'RESUME');
  if (change.status !== 'running') throw new MigrationError(`did not resume: it is ${change.status}`, { vm, kind: 'wrong-state', runState: change.status });
  return change;
}

async function changeRunState(qmp: QmpClient, vm: string, command: 'stop' | 'cont', event: 'STOP' | 'RESUME'): Promise<RunStateChange> {
  let seen: QmpEvent<typeof event> | undefined;
  const done = new AbortController(); // drops the waiter when no event comes (VM already there)
  const waiter = qmp.waitForEvent(event, undefined, 10_000, done.signal);
  waiter.then((e) => (seen = e), () => undefined);
  try {
    await qmp.command(command);
    const repliedAtMs = hostNow();
    const { status } = await qmp.command('query-status');
    if (!seen) seen = await Promise.race([waiter, delay(LATE_EVENT_GRACE_MS)]).catch(() => undefined);
    return seen ? { status, atMs: qemuEventTime(seen), repliedAtMs, source: 'event' } : { status, atMs: repliedAtMs, repliedAtMs, source: 'already' };
  } catch (err) {
    throw qmpFailure(vm, `could not ${command} the VM`, err);
  } finally {
    done.abort();
  }
}

function delay(ms: number): Promise<undefined> {
  return new Promise((resolve) => setTimeout(() => resolve(undefined), ms));
}

/**
 * Resolves at the epoch ms `at` of the host clock (at once if it has passed) and returns the time it
 * fired. A timer gets close, then the last few ms are spun with setImmediate: timers fire up to a few ms
 * late, but the event loop stays free for other VMs' work while we spin.
 */
export async function waitUntil(at: number | undefined): Promise<number> {
  if (at === undefined) return hostNow();
  const early = at - hostNow() - SPIN_MS;
  if (early > 0) await delay(early);
  while (hostNow() < at) await new Promise<void>((resolve) => setImmediate(resolve));
  return hostNow();
}

const SPIN_MS = 4;
