// What the watchdog and the detached guard do when a lease runs out: end the checkpoint's save on the VM
// (cancel its migration, or `cont` would turn it into a live migration that keeps writing while the guest
// runs) and resume the VM. Both go on to the `cont` even if the cancel fails: the VM must run again.
import type { QmpClient } from '../../qmp';
// The two modules, not the layer's index: the detached guard process loads this, and need not load the
// state streaming (its hashing threads, the zstd codec) with it.
import { cancelMigration } from '../migration/control';
import { resumeVm, type RunStateChange } from '../migration/runstate';
import type { Logger } from '../../../node/logger';

/** How long a deadline resume waits for QEMU to end a cancelled save before it sends `cont` anyway. */
const CANCEL_WAIT_MS = 5000;

export async function resumeAtDeadline(qmp: QmpClient, vm: string, log: Logger): Promise<RunStateChange> {
  await cancelMigration(qmp, vm, { timeoutMs: CANCEL_WAIT_MS }).catch((err: unknown) => log.error({ err }, 'could not cancel the save; resuming anyway'));
  return resumeVm(qmp, vm);
}
