// The host's clock. Everything a host measures or schedules against wall-clock time — pause leases, the
// timed barriers' notBefore, reported timestamps — reads it here, so a test can run one host with its
// clock offset (activities/test-hooks.ts) the way an unsynchronised host would be.
import { hookClockOffset } from '../test-hooks';
import { eventTimeMs, type QmpEvent } from '../qmp';

export function hostNow(): number {
  return Date.now() + hookClockOffset();
}

/** When QEMU emitted `event`, on this host's clock (QEMU reads the same system clock as we do). */
export function qemuEventTime(event: Pick<QmpEvent, 'timestamp'>): number {
  return eventTimeMs(event) + hookClockOffset();
}
