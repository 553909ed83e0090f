// vccr protect <cluster>: continuous protection — checkpoints on a Temporal Schedule, retention, and the
// watch that recovers the cluster by itself (client/protect.ts). Without options it shows the protection.
import { describeZodError } from '../../common/errors';
import { LIVE_CHECKPOINTS_AVAILABLE, parseDuration, retentionPolicySchema, type RetentionPolicy, type WatchSettings } from '../../common/protection';
import { EXIT, VccrError } from '../errors';
import type { ProtectOptions, ProtectionStatus } from '../protect';
import type { VccrClient } from '../index';
import { describeProtection } from '../render';
import { flag, onlyCluster, stringValue, usageError } from './args';
import type { Command, OptionValues } from './command';

const ACTIONS = ['pause', 'resume', 'now', 'off'] as const;
const SETTINGS = ['every', 'live', 'keep-last', 'keep-hourly', 'keep-daily', 'jitter', 'check-every', 'grace', 'max-recoveries'] as const;

function count(values: OptionValues, name: string): number | undefined {
  const v = stringValue(values, name);
  if (v === undefined) return undefined;
  if (!/^\d{1,6}$/.test(v)) throw usageError(`--${name} ${v}: expected a whole number`);
  return Number(v);
}

function duration(values: OptionValues, name: string): number | undefined {
  const v = stringValue(values, name);
  if (v === undefined) return undefined;
  const ms = v === '0' ? 0 : parseDuration(v);
  if (ms === undefined) throw usageError(`--${name} ${v}: expected a duration like 30s, 10m, 2h or 1d`);
  return ms;
}

function retentionOf(values: OptionValues): Partial<RetentionPolicy> | undefined {
  const given = Object.fromEntries(
    Object.entries({ keepLast: count(values, 'keep-last'), keepHourly: count(values, 'keep-hourly'), keepDaily: count(values, 'keep-daily') }).filter(([, v]) => v !== undefined),
  );
  if (!Object.keys(given).length) return undefined;
  const checked = retentionPolicySchema.safeParse(given);
  if (!checked.success) throw new VccrError(describeZodError(checked.error, 'retention'), 'InvalidInput', EXIT.usage);
  return given;
}

function watchOf(values: OptionValues): Partial<WatchSettings> {
  const check = duration(values, 'check-every');
  const grace = duration(values, 'grace');
  const max = count(values, 'max-recoveries');
  return {
    ...(check !== undefined ? { checkEverySeconds: check / 1000 } : {}),
    ...(grace !== undefined ? { graceSeconds: grace / 1000 } : {}),
    ...(max !== undefined ? { maxRecoveriesPerHour: max } : {}),
  };
}

/** The protection options, checked (no connection needed). */
function protectOptionsOf(values: OptionValues): ProtectOptions {
  const everyMs = duration(values, 'every');
  if (everyMs === undefined) throw usageError('protect: --every is required to protect a cluster (e.g. --every 10m)');
  if (everyMs < 1000) throw usageError('protect: --every must be at least 1s');
  if (flag(values, 'live') && !LIVE_CHECKPOINTS_AVAILABLE) {
    throw usageError('--live: live checkpoints are not available in this version; protect without --live (stop-and-save checkpoints)');
  }
  const jitterMs = duration(values, 'jitter');
  const retention = retentionOf(values);
  return {
    everyMs,
    ...(jitterMs !== undefined ? { jitterMs } : {}),
    ...(flag(values, 'live') ? { live: true } : {}),
    ...(retention ? { retention } : {}),
    watch: watchOf(values),
  };
}

export const protect: Command = {
  name: 'protect',
  synopsis: '<cluster> [--every 10m [--keep-last N] …] [--pause|--resume|--now|--off]',
  summary: 'checkpoint on a schedule, keep what the policy says, recover by itself; or show/control it',
  details:
    'With --every: creates (or updates) the Temporal Schedule vccr-protect-<cluster> (overlap: skip) and starts the watch.\n' +
    'Without options: the schedule (next runs, recent outcomes) and the watch state. --pause/--resume/--now control the\n' +
    'schedule; --off deletes it and stops the watch (checkpoints are kept).',
  options: {
    every: { type: 'string', value: 'DURATION', text: 'time between checkpoints (30s, 10m, 2h, 1d)' },
    live: { type: 'boolean', text: 'live checkpoints: the VMs pause for milliseconds, RAM is written while they run' },
    'keep-last': { type: 'string', value: 'N', text: 'keep the N newest checkpoints (default 6 if no --keep-* is given)' },
    'keep-hourly': { type: 'string', value: 'N', text: 'keep the newest checkpoint of each of the N most recent hours that have one' },
    'keep-daily': { type: 'string', value: 'N', text: 'keep the newest checkpoint of each of the N most recent days that have one' },
    jitter: { type: 'string', value: 'DURATION', text: 'random delay added to each run (default: a tenth of --every, at most 1m)' },
    'check-every': { type: 'string', value: 'DURATION', text: 'how often the watch checks every VM and host worker (default 5s)' },
    grace: { type: 'string', value: 'DURATION', text: 'how long a host worker may not answer before it counts as dead (default 15s)' },
    'max-recoveries': { type: 'string', value: 'N', text: 'recoveries per hour before the watch waits for an operator (default 3)' },
    pause: { type: 'boolean', text: 'pause the schedule (the watch goes on)' },
    resume: { type: 'boolean', text: 'resume the schedule' },
    now: { type: 'boolean', text: 'run the scheduled checkpoint now (skipped if one is running)' },
    off: { type: 'boolean', text: 'delete the schedule and stop the watch' },
  },
  prepare(args) {
    const cluster = onlyCluster(args, 'protect');
    const actions = ACTIONS.filter((a) => flag(args.values, a));
    const settings = SETTINGS.filter((s) => args.values[s] !== undefined);
    if (actions.length > 1) throw usageError('protect: give at most one of --pause, --resume, --now, --off');
    const action = actions[0];
    if (action && settings.length) throw usageError(`protect --${action} takes no other protection options (got --${settings.join(', --')})`);
    const options = !action && settings.length ? protectOptionsOf(args.values) : undefined;
    const step = (vccr: VccrClient): Promise<ProtectionStatus> => {
      if (action === 'pause') return vccr.protection.pause(cluster);
      if (action === 'resume') return vccr.protection.resume(cluster);
      if (action === 'now') return vccr.protection.trigger(cluster);
      if (action === 'off') return vccr.protection.off(cluster);
      return options ? vccr.protection.protect(cluster, options) : vccr.protection.status(cluster);
    };
    return async (ctx) => {
      const result = await step(await ctx.connect());
      ctx.print(describeProtection(result), result);
      return EXIT.ok;
    };
  },
};
