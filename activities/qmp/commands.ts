// Typed layer over the QMP commands the product uses. Each entry names the zod schema of the
// command's arguments (validated before anything is sent) and of its `return` value (validated when
// the reply arrives). Field names stay exactly as QEMU spells them (docs: qapi/*.json), so QEMU's
// documentation applies verbatim. Reply objects are "loose": fields we do not model are kept, and
// only the fields the product relies on are required, so newer QEMU versions still validate.
// Anything not listed here goes through QmpClient.execute(), which returns `unknown`.
import { z } from 'zod';
import { QmpArgumentError, QmpReplyValidationError } from './errors';

/** A string schema typed as a known-values union that still accepts values newer QEMUs may add. */
function lenientEnum<const T extends readonly string[]>(_known: T) {
  return z.string().transform((value) => value as T[number] | (string & {}));
}

export const RUN_STATES = [
  'debug', 'inmigrate', 'internal-error', 'io-error', 'paused', 'postmigrate', 'prelaunch',
  'finish-migrate', 'restore-vm', 'running', 'save-vm', 'shutdown', 'suspended', 'watchdog',
  'guest-panicked', 'colo',
] as const;
export const RunStateSchema = lenientEnum(RUN_STATES);
export type RunState = z.output<typeof RunStateSchema>;

export const MIGRATION_STATUSES = [
  'none', 'setup', 'cancelling', 'cancelled', 'active', 'postcopy-active', 'postcopy-paused',
  'postcopy-recover-setup', 'postcopy-recover', 'completed', 'failed', 'colo', 'pre-switchover',
  'device', 'wait-unplug',
] as const;
export const MigrationStatusSchema = lenientEnum(MIGRATION_STATUSES);
export type MigrationStatus = z.output<typeof MigrationStatusSchema>;
/** A migration in one of these states will not change state again by itself. */
export const MIGRATION_FINAL_STATUSES: readonly MigrationStatus[] = ['completed', 'failed', 'cancelled'];

export const MIGRATION_CAPABILITIES = [
  'xbzrle', 'rdma-pin-all', 'auto-converge', 'zero-blocks', 'compress', 'events', 'postcopy-ram',
  'x-colo', 'release-ram', 'block', 'return-path', 'pause-before-switchover', 'multifd',
  'dirty-bitmaps', 'postcopy-blocktime', 'late-block-activate', 'x-ignore-shared', 'validate-uuid',
  'background-snapshot', 'zero-copy-send', 'postcopy-preempt', 'switchover-ack', 'dirty-limit',
  'mapped-ram',
] as const;
export type MigrationCapability = (typeof MIGRATION_CAPABILITIES)[number];

const uint = z.int().nonnegative();
const absolutePath = z
  .string()
  .min(2)
  .refine((p) => p.startsWith('/') && !p.includes('\0'), 'must be an absolute path without NUL bytes');

/**
 * Migration URIs we allow. `exec:` is refused on purpose: QEMU hands it to /bin/sh, and this
 * product never runs a shell (stream to a `unix:` socket the host worker listens on instead).
 */
export const MigrationUriSchema = z.string().superRefine((uri, ctx) => {
  if (uri.startsWith('unix:')) {
    if (!uri.slice(5).startsWith('/') || uri.includes('\0')) {
      ctx.addIssue({ code: 'custom', message: 'unix: URIs must name an absolute socket path' });
    }
  } else if (uri.startsWith('tcp:')) {
    if (!/^tcp:[^\s]+:\d{1,5}(,[^\s]*)?$/.test(uri)) {
      ctx.addIssue({ code: 'custom', message: 'tcp: URIs must look like tcp:HOST:PORT' });
    }
  } else if (uri.startsWith('fd:')) {
    if (!/^fd:[A-Za-z0-9_-]+$/.test(uri)) ctx.addIssue({ code: 'custom', message: 'fd: URIs must name a monitor fd' });
  } else if (uri.startsWith('exec:')) {
    ctx.addIssue({ code: 'custom', message: 'exec: migration URIs run a shell command and are not allowed' });
  } else {
    ctx.addIssue({ code: 'custom', message: 'migration URI must start with unix:, tcp: or fd:' });
  }
});

// ---------------------------------------------------------------------------------------------
// Reply schemas

/** Commands whose successful reply is `{}` resolve with `undefined`. */
const EmptyReturn = z.looseObject({}).transform((): void => undefined);

export const StatusInfoSchema = z.looseObject({
  running: z.boolean(),
  status: RunStateSchema,
  singlestep: z.boolean().optional(), // deprecated in QEMU 8.1
});
export type StatusInfo = z.output<typeof StatusInfoSchema>;

export const MigrationRamStatsSchema = z.looseObject({
  transferred: uint,
  remaining: uint,
  total: uint,
  duplicate: uint.optional(),
  normal: uint.optional(),
  'normal-bytes': uint.optional(),
  'dirty-pages-rate': uint.optional(),
  mbps: z.number().optional(),
  'dirty-sync-count': uint.optional(),
  'postcopy-requests': uint.optional(),
  'page-size': uint.optional(),
  'multifd-bytes': uint.optional(),
  'pages-per-second': uint.optional(),
  'precopy-bytes': uint.optional(),
  'downtime-bytes': uint.optional(),
  'postcopy-bytes': uint.optional(),
});
export type MigrationRamStats = z.output<typeof MigrationRamStatsSchema>;

/** `query-migrate`. Before any migration QEMU answers `{}`, so even `status` is optional. */
export const MigrationInfoSchema = z.looseObject({
  status: MigrationStatusSchema.optional(),
  ram: MigrationRamStatsSchema.optional(),
  'error-desc': z.string().optional(),
  /** ms since the migration started (final value once completed). */
  'total-time': uint.optional(),
  /** ms the guest was stopped for switchover (completed migrations only). */
  downtime: uint.optional(),
  'expected-downtime': uint.optional(),
  'setup-time': uint.optional(),
  'blocked-reasons': z.array(z.string()).optional(),
});
export type MigrationInfo = z.output<typeof MigrationInfoSchema>;

export const MigrationCapabilityStatusListSchema = z.array(
  z.looseObject({ capability: z.string(), state: z.boolean() }),
);

export const MigrationParametersSchema = z.looseObject({
  'max-bandwidth': uint.optional(),
  'downtime-limit': uint.optional(),
  'multifd-channels': uint.optional(),
  'xbzrle-cache-size': uint.optional(),
  'max-postcopy-bandwidth': uint.optional(),
  'cpu-throttle-initial': uint.optional(),
  'cpu-throttle-increment': uint.optional(),
  'max-cpu-throttle': uint.optional(),
});
export type MigrationParameters = z.output<typeof MigrationParametersSchema>;

/** `ImageInfo` (recursive through `backing-image`). */
export interface ImageInfo {
  filename: string;
  format: string;
  'virtual-size': number;
  'actual-size'?: number | undefined;
  'dirty-flag'?: boolean | undefined;
  'cluster-size'?: number | undefined;
  'backing-filename'?: string | undefined;
  'full-backing-filename'?: string | undefined;
  'backing-filename-format'?: string | undefined;
  'backing-image'?: ImageInfo | undefined;
  [field: string]: unknown;
}
export const ImageInfoSchema: z.ZodType<ImageInfo> = z.looseObject({
  filename: z.string(),
  format: z.string(),
  'virtual-size': uint,
  'actual-size': uint.optional(),
  'dirty-flag': z.boolean().optional(),
  'cluster-size': uint.optional(),
  'backing-filename': z.string().optional(),
  'full-backing-filename': z.string().optional(),
  'backing-filename-format': z.string().optional(),
  get 'backing-image'() {
    return ImageInfoSchema.optional();
  },
});

/** `BlockDeviceInfo`: one node of the block graph (`query-block`'s `inserted`, `query-named-block-nodes`). */
export const BlockDeviceInfoSchema = z.looseObject({
  file: z.string(),
  'node-name': z.string().optional(),
  ro: z.boolean(),
  drv: z.string(),
  backing_file: z.string().optional(),
  backing_file_depth: uint,
  encrypted: z.boolean(),
  image: ImageInfoSchema,
});
export type BlockDeviceInfo = z.output<typeof BlockDeviceInfoSchema>;

export const BlockInfoSchema = z.looseObject({
  device: z.string(),
  qdev: z.string().optional(),
  type: z.string(),
  removable: z.boolean(),
  locked: z.boolean(),
  inserted: BlockDeviceInfoSchema.optional(),
  tray_open: z.boolean().optional(),
  'io-status': z.string().optional(),
});
export type BlockInfo = z.output<typeof BlockInfoSchema>;

/** The image files of a node's backing chain, active (top) layer first, base last. */
export function backingChain(image: ImageInfo): string[] {
  const chain: string[] = [];
  for (let layer: ImageInfo | undefined = image; layer; layer = layer['backing-image']) chain.push(layer.filename);
  return chain;
}

// ---------------------------------------------------------------------------------------------
// Argument schemas (strict: a misspelt field is refused before it reaches QEMU)

const MigrateArgs = z.strictObject({ uri: MigrationUriSchema });

const MigrateSetCapabilitiesArgs = z.strictObject({
  capabilities: z.array(z.strictObject({ capability: z.enum(MIGRATION_CAPABILITIES), state: z.boolean() })).min(1),
});

const MigrateSetParametersArgs = z
  .strictObject({
    /** bytes per second; QEMU's default is 128 MiB/s. */
    'max-bandwidth': uint.optional(),
    /** ms the guest may be stopped for the final pass of a live migration. */
    'downtime-limit': z.int().min(0).max(2_000_000).optional(),
    'multifd-channels': z.int().min(1).max(255).optional(),
    'xbzrle-cache-size': uint.optional(),
    'max-postcopy-bandwidth': uint.optional(),
    'cpu-throttle-initial': z.int().min(1).max(99).optional(),
    'cpu-throttle-increment': z.int().min(1).max(99).optional(),
    'max-cpu-throttle': z.int().min(1).max(99).optional(),
  })
  .refine((p) => Object.values(p).some((v) => v !== undefined), 'set at least one parameter');

const BlockdevSnapshotSyncArgs = z
  .strictObject({
    device: z.string().min(1).optional(),
    'node-name': z.string().min(1).optional(),
    /** Absolute: QEMU resolves relative paths against its own working directory. */
    'snapshot-file': absolutePath,
    'snapshot-node-name': z.string().min(1).optional(),
    format: z.string().min(1).optional(),
    mode: z.enum(['existing', 'absolute-paths']).optional(),
  })
  .refine((a) => (a.device === undefined) !== (a['node-name'] === undefined), 'give exactly one of device or node-name');

/** Copies data from the layers between `device` and `base-node` into `device`, then drops them from its chain. */
const BlockStreamArgs = z.strictObject({
  'job-id': z.string().min(1),
  /** Node name (or drive id) of the layer that takes the data: the active layer or an intermediate one. */
  device: z.string().min(1),
  /** The layer it backs onto afterwards; absent: stream everything (no backing file left). */
  'base-node': z.string().min(1).optional(),
  /** Bytes per second; 0: unlimited. */
  speed: uint.optional(),
});

/** `BlockJobInfo` (query-block-jobs). */
export const BlockJobInfoSchema = z.looseObject({
  device: z.string(),
  type: z.string(),
  len: uint,
  offset: uint,
  busy: z.boolean(),
  paused: z.boolean(),
  speed: uint,
  ready: z.boolean(),
  status: z.string(),
  error: z.string().optional(),
});
export type BlockJobInfo = z.output<typeof BlockJobInfoSchema>;

// ---------------------------------------------------------------------------------------------
// The command map

interface CommandSpec {
  /** null: the command takes no arguments. */
  readonly args: z.ZodType<unknown, unknown> | null;
  readonly returns: z.ZodType<unknown, unknown>;
}

export const QMP_COMMANDS = {
  qmp_capabilities: { args: z.strictObject({ enable: z.array(z.string()).optional() }).optional(), returns: EmptyReturn },
  'query-status': { args: null, returns: StatusInfoSchema },
  stop: { args: null, returns: EmptyReturn },
  cont: { args: null, returns: EmptyReturn },
  quit: { args: null, returns: EmptyReturn },
  system_powerdown: { args: null, returns: EmptyReturn },
  /** Starts the migration and returns at once; follow it with query-migrate or MIGRATION events. */
  migrate: { args: MigrateArgs, returns: EmptyReturn },
  /** Only valid on a QEMU started with `-incoming defer`. */
  'migrate-incoming': { args: MigrateArgs, returns: EmptyReturn },
  migrate_cancel: { args: null, returns: EmptyReturn },
  'query-migrate': { args: null, returns: MigrationInfoSchema },
  'migrate-set-capabilities': { args: MigrateSetCapabilitiesArgs, returns: EmptyReturn },
  'query-migrate-capabilities': { args: null, returns: MigrationCapabilityStatusListSchema },
  'migrate-set-parameters': { args: MigrateSetParametersArgs, returns: EmptyReturn },
  'query-migrate-parameters': { args: null, returns: MigrationParametersSchema },
  'blockdev-snapshot-sync': { args: BlockdevSnapshotSyncArgs, returns: EmptyReturn },
  'query-block': { args: null, returns: z.array(BlockInfoSchema) },
  /** Starts a stream job and returns at once; BLOCK_JOB_COMPLETED (with `error` if it failed) ends it. */
  'block-stream': { args: BlockStreamArgs, returns: EmptyReturn },
  'query-block-jobs': { args: null, returns: z.array(BlockJobInfoSchema) },
  'query-named-block-nodes': {
    args: z.strictObject({ flat: z.boolean().optional() }).optional(),
    returns: z.array(BlockDeviceInfoSchema),
  },
} as const satisfies Record<string, CommandSpec>;

export type QmpCommandName = keyof typeof QMP_COMMANDS;
type SpecOf<K extends QmpCommandName> = (typeof QMP_COMMANDS)[K];

/** Arguments of a typed command (undefined when it takes none). */
export type QmpCommandArgs<K extends QmpCommandName> = SpecOf<K>['args'] extends z.ZodType
  ? z.input<SpecOf<K>['args']>
  : undefined;
/** Validated return value of a typed command. */
export type QmpCommandReturn<K extends QmpCommandName> = z.output<SpecOf<K>['returns']>;

/** Parameter tuple for QmpClient.command(): arguments are required exactly when the schema requires them. */
export type QmpCommandParams<K extends QmpCommandName, O> = [QmpCommandArgs<K>] extends [undefined]
  ? [args?: undefined, options?: O]
  : undefined extends QmpCommandArgs<K>
    ? [args?: QmpCommandArgs<K>, options?: O]
    : [args: QmpCommandArgs<K>, options?: O];

export function isTypedCommand(name: string): name is QmpCommandName {
  return Object.prototype.hasOwnProperty.call(QMP_COMMANDS, name);
}

/** Validate a typed command's arguments; returns what goes on the wire. Throws QmpArgumentError. */
export function prepareArgs(name: QmpCommandName, args: unknown): Record<string, unknown> | undefined {
  const spec: CommandSpec = QMP_COMMANDS[name];
  if (spec.args === null) {
    if (args !== undefined) throw new QmpArgumentError(name, 'this command takes no arguments');
    return undefined;
  }
  const parsed = spec.args.safeParse(args);
  if (!parsed.success) throw new QmpArgumentError(name, z.prettifyError(parsed.error), { cause: parsed.error });
  const value = parsed.data;
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new QmpArgumentError(name, 'arguments must be an object');
  }
  return value as Record<string, unknown>;
}

/** Validate a typed command's raw `return` value. Throws QmpReplyValidationError. */
export function parseReturn<K extends QmpCommandName>(name: K, raw: unknown): QmpCommandReturn<K> {
  const spec: CommandSpec = QMP_COMMANDS[name];
  const parsed = spec.returns.safeParse(raw);
  if (!parsed.success) {
    throw new QmpReplyValidationError(name, z.prettifyError(parsed.error), raw, { cause: parsed.error });
  }
  return parsed.data as QmpCommandReturn<K>;
}
