// The one error type of the migration layer. Its message always names the VM and says what QEMU said
// (`error-desc`, or the QMP error's description), so a caller can pass it on to the user unchanged.
import type { MigrationStatus, RunState } from '../../qmp';

export type MigrationFailureKind =
  /** QEMU reports the migration failed; `errorDesc` holds QEMU's reason. */
  | 'failed'
  /** The migration was cancelled (by us, or by someone else on the monitor). */
  | 'cancelled'
  /** The QMP session ended while we waited: QEMU exited or was killed. */
  | 'qemu-exited'
  /** Our end of the stream failed (store full, I/O error, the state file is not what QEMU sent). */
  | 'receiver-failed'
  /** No final status within the caller's deadline; the migration may still be running. */
  | 'timeout'
  /** This QEMU cannot do it here (e.g. no userfaultfd write-protect for a background snapshot). */
  | 'unsupported'
  /** The VM or its migration is in a state that does not allow it (e.g. a migration already active). */
  | 'wrong-state';

export interface MigrationErrorDetails {
  vm: string;
  kind: MigrationFailureKind;
  /** Last migration status QEMU reported, when known. */
  status?: MigrationStatus | undefined;
  /** QEMU's own words: query-migrate's `error-desc` or a QMP error's `desc`. */
  qemuSaid?: string | undefined;
  /** For kind 'wrong-state': the VM's run state that did not allow it (query-status), when that was the problem. */
  runState?: RunState | undefined;
  cause?: unknown;
}

export class MigrationError extends Error {
  readonly vm: string;
  readonly kind: MigrationFailureKind;
  readonly status: MigrationStatus | undefined;
  readonly qemuSaid: string | undefined;
  readonly runState: RunState | undefined;

  constructor(what: string, details: MigrationErrorDetails) {
    const said = details.qemuSaid ? `: QEMU said: ${details.qemuSaid}` : '';
    super(`VM ${details.vm}: ${what}${said}`, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'MigrationError';
    this.vm = details.vm;
    this.kind = details.kind;
    this.status = details.status;
    this.qemuSaid = details.qemuSaid;
    this.runState = details.runState;
  }
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
