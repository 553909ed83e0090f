// The host's clock. Everything a host measures or schedules against wall-clock time — pause leases, the
// timed barriers' notBefore, reported timestamps — reads it here, so a test can run one host with its
// clock offset (activities/test-hooks.ts) the way an unsynchronised host would be.
import { hookClockOffset } from '../test-hooks';

export function hostNow(): number {
  return Date.now() + hookClockOffset();
}
