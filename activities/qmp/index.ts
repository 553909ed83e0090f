// QMP client: public surface. See client.ts for the session semantics.
export { QmpClient } from './client';
export type { ExecuteOptions, QmpConnectOptions, QmpVersion } from './options';
export * from './errors';
export {
  backingChain,
  MIGRATION_CAPABILITIES,
  MIGRATION_FINAL_STATUSES,
  MIGRATION_STATUSES,
  MigrationUriSchema,
  QMP_COMMANDS,
  RUN_STATES,
  type BlockDeviceInfo,
  type BlockInfo,
  type ImageInfo,
  type MigrationCapability,
  type MigrationInfo,
  type MigrationParameters,
  type MigrationRamStats,
  type MigrationStatus,
  type QmpCommandArgs,
  type QmpCommandName,
  type QmpCommandReturn,
  type RunState,
  type StatusInfo,
} from './commands';
export {
  eventTimeMs,
  KNOWN_EVENT_DATA,
  QmpEventStream,
  type AnyQmpEvent,
  type EventStreamOptions,
  type KnownEventName,
  type QmpEvent,
  type QmpEventData,
} from './events';
export type { QmpGreeting, QmpTimestamp } from './protocol';
