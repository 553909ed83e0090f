// `vccr protect` and `vccr recover`: continuous protection from the command line (client/protect.ts).
import { formatDuration, parseDuration, type RetentionPolicy, type WatchSettings } from '../common/protection';
import type { VccrClient } from './index';
import { EXIT, VccrError } from './errors';
import type { ProtectionStatus } from './protect';
import { table } from './render';

export const PROTECT_USAGE = `  vccr protect <cluster> --every 10m [--live] [--keep-last N] [--keep-hourly N] [--keep-daily N] [--jitter 1m]
                        [--check-every 5s] [--grace 15s] [--max-recoveries 3]
                                              checkpoint on a Temporal Schedule, apply retention, watch and
                                              recover the cluster by itself (creates or updates)
  vccr protect <cluster> [--pause|--resume|--now|--off]
                                              show protection (next runs, last outcomes, watch state), or
                                              pause/resume the schedule, run it now, or switch it all off
  vccr recover <cluster> [--host-dead HOST ...]
                                              tell the watch to recover now; --host-dead confirms a host is
                                              dead (its VMs may then be moved to a spare host)
`;

export const protectOptions = {
  every: { type: 'string' },
  live: { type: 'boolean' },
  'keep-last': { type: 'string' },
  'keep-hourly': { type: 'string' },
  'keep-daily': { type: 'string' },
  jitter: { type: 'string' },
  'check-every': { type: 'string' },
  grace: { type: 'string' },
  'max-recoveries': { type: 'string' },
  pause: { type: 'boolean' },
  resume: { type: 'boolean' },
  now: { type: 'boolean' },
  off: { type: 'boolean' },
  'host-dead': { type: 'string', multiple: true },
} as const;

export interface ProtectFlags {
  every?: string | undefined;
  live?: boolean | undefined;
  'keep-last'?: string | undefined;
  'keep-hourly'?: string | undefined;
  'keep-daily'?: string | undefined;
  jitter?: string | undefined;
  'check-every'?: string | undefined;
  grace?: string | undefined;
  'max-recoveries'?: string | undefined;
  pause?: boolean | undefined;
  resume?: boolean | undefined;
  now?: boolean | undefined;
  off?: boolean | undefined;
  'host-dead'?: string[] | undefined;
}

const usage = (message: string) => new VccrError(`${message}\nrun \`vccr --help\` for usage`, 'InvalidInput', EXIT.usage);

function count(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,6}$/.test(value)) throw usage(`--${flag} ${value}: expected a whole number`);
  return Number(value);
}

function duration(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  if (ms === undefined) throw usage(`--${flag} ${value}: expected a duration like 30s, 10m, 2h or 1d`);
  return ms;
}

function retentionOf(flags: ProtectFlags): Partial<RetentionPolicy> | undefined {
  const policy = { keepLast: count('keep-last', flags['keep-last']), keepHourly: count('keep-hourly', flags['keep-hourly']), keepDaily: count('keep-daily', flags['keep-daily']) };
  const given = Object.fromEntries(Object.entries(policy).filter(([, v]) => v !== undefined));
  return Object.keys(given).length ? given : undefined;
}

function watchOf(flags: ProtectFlags): Partial<WatchSettings> {
  const check = duration('check-every', flags['check-every']);
  const grace = flags.grace === '0' ? 0 : duration('grace', flags.grace);
  const max = count('max-recoveries', flags['max-recoveries']);
  return {
    ...(check !== undefined ? { checkEverySeconds: check / 1000 } : {}),
    ...(grace !== undefined ? { graceSeconds: grace / 1000 } : {}),
    ...(max !== undefined ? { maxRecoveriesPerHour: max } : {}),
  };
}

export async function runProtect(vccr: VccrClient, cluster: string, flags: ProtectFlags): Promise<ProtectionStatus> {
  const actions = (['pause', 'resume', 'now', 'off'] as const).filter((a) => flags[a]);
  if (actions.length > 1) throw usage(`protect: give at most one of --pause, --resume, --now, --off`);
  const action = actions[0];
  const settingFlags = flags.every ?? flags.live ?? retentionOf(flags) ?? flags.jitter ?? flags['check-every'] ?? flags.grace ?? flags['max-recoveries'];
  if (action && settingFlags !== undefined) throw usage(`protect --${action} takes no other protection options`);
  if (action === 'pause') return vccr.protection.pause(cluster);
  if (action === 'resume') return vccr.protection.resume(cluster);
  if (action === 'now') return vccr.protection.trigger(cluster);
  if (action === 'off') return vccr.protection.off(cluster);
  if (settingFlags === undefined) return vccr.protection.status(cluster);
  const everyMs = duration('every', flags.every);
  if (everyMs === undefined) throw usage('protect: --every is required to protect a cluster (e.g. --every 10m)');
  const jitterMs = duration('jitter', flags.jitter);
  const retention = retentionOf(flags);
  return vccr.protection.protect(cluster, {
    everyMs,
    ...(jitterMs !== undefined ? { jitterMs } : {}),
    ...(flags.live ? { live: true } : {}),
    ...(retention ? { retention } : {}),
    watch: watchOf(flags),
  });
}

export function describeProtection(p: ProtectionStatus): string {
  const lines: string[] = [];
  const s = p.schedule;
  if (!s) lines.push(`cluster ${p.cluster} is not protected (no schedule)`);
  else {
    const keep = [`last ${s.retention.keepLast}`, `hourly ${s.retention.keepHourly}`, `daily ${s.retention.keepDaily}`].join(', ');
    lines.push(
      `schedule ${s.scheduleId}: every ${formatDuration(s.everyMs)} (jitter up to ${formatDuration(s.jitterMs)}), ${s.mode === 'live' ? 'live' : 'stop-and-save'} checkpoints, keep ${keep}` +
        `${s.paused ? `; PAUSED${s.note ? ` (${s.note})` : ''}` : ''}`,
      `  ${s.actionsTaken} runs so far, ${s.skippedOverlap} skipped because one was still running`,
      `  next runs: ${s.paused ? '(paused)' : s.nextRuns.join(', ') || '-'}`,
    );
    if (s.recent.length) {
      lines.push('  recent runs:');
      lines.push(table([['SCHEDULED', 'STATUS', 'OUTCOME'], ...s.recent.map((r) => [r.scheduledAt, r.status, r.outcome ?? '-'])]).replace(/^/gm, '    '));
    }
  }
  const w = p.watch;
  if (!w) lines.push(`watch: not running`);
  else {
    lines.push(`watch: ${w.phase.toUpperCase()} since ${new Date(w.since).toISOString()}: ${w.reason}`);
    const last = w.recoveries.at(-1);
    if (last) lines.push(`  last recovery: ${last.outcome} at ${new Date(last.endedAt).toISOString()} (${last.detail})`);
  }
  return lines.join('\n');
}

export async function runRecover(vccr: VccrClient, cluster: string, deadHosts: string[] | undefined): Promise<string> {
  const state = await vccr.protection.recover(cluster, deadHosts ?? []);
  const confirmed = state.confirmedDead.length ? `; hosts confirmed dead: ${state.confirmedDead.join(', ')}` : '';
  return `the watch of ${cluster} will check and recover now${confirmed}\nwatch: ${state.phase}: ${state.reason}\n(follow it with \`vccr protect ${cluster}\` or \`vccr status ${cluster}\`)`;
}
