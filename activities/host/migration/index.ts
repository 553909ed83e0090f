// The migration layer: every QMP sequence that moves VM state goes through here (in the spirit of
// libvirt's qemu_migration.c). Callers hand over a QmpClient and a VM name; every failure is a
// MigrationError that names the VM and quotes QEMU.
//
//   configureMigration   capabilities (events, background-snapshot) and bandwidth, in one place
//   MigrationWatch       follow one migration to its final status (typed MIGRATION events)
//   cancelMigration      cancel whatever runs and wait until QEMU says it is over
//   pauseVm / resumeVm   stop / cont, timed by QEMU's STOP / RESUME events; waitUntil(at) for timed plans
//   saveToStream         stop mode: a paused VM's state into our StateReceiver (file)
//   loadFromStream       a state file into a QEMU started with `-incoming defer`
//   inProcessSink        where a snapshot's stream goes (a draining relay + receiver); pluggable (SinkFactory)
//   prepareBackgroundSnapshot live mode: set up before the pause; start(at) snapshots at that instant and
//                             resolves at QEMU's RESUME; the guest runs while RAM is written (done, cancel)
export {
  cancelMigration,
  cancelsBackgroundSnapshotSafely,
  configureMigration,
  isActiveStatus,
  isFinalStatus,
  migrationInfo,
  MigrationWatch,
  UNLIMITED_BANDWIDTH,
  type CancelOutcome,
  type EndOptions,
  type FinalMigrationStatus,
  type MigrationEnd,
  type MigrationSettings,
} from './control';
export { MigrationError, type MigrationErrorDetails, type MigrationFailureKind } from './errors';
export { pauseVm, resumeVm, waitUntil, type RunStateChange } from './runstate';
export {
  prepareBackgroundSnapshot,
  startBackgroundSnapshot,
  type BackgroundSnapshot,
  type BackgroundSnapshotOptions,
  type PreparedSnapshot,
  type RamProgress,
  type SnapshotResult,
  type SnapshotTimes,
} from './snapshot';
export { inProcessSink, type SinkFactory, type SnapshotSink } from './sink';
export { loadFromStream, saveToStream, type LoadOptions, type SaveOptions, type StreamOptions, type StreamResult } from './stream';
