// What the watch does about what it saw (pure: no activities, so it is easy to reason about and test).
import type { Failure } from '../common/protection';
import type { ClusterSpec } from '../common/spec';
import type { WatchPhase, WatchState } from '../common/watch-messages';

export type Decision =
  | { action: 'wait'; phase: WatchPhase; reason: string }
  | { action: 'needs-operator'; reason: string }
  | { action: 'recover'; hostMap: Record<string, string>; deadHosts: string[]; failures: Failure[] };

const HOUR = 3_600_000;

export function describeFailure(f: Failure): string {
  return f.vm ? `${f.vm} on host ${f.host}: ${f.detail}` : `host ${f.host}: ${f.detail}`;
}

/** Recoveries that count against the per-hour limit at `now`. */
export function recentRecoveries(state: WatchState, now: number): number {
  return state.recoveries.filter((r) => r.startedAt >= Math.max(now - HOUR, state.countFrom)).length;
}

/**
 * Given what the watch has seen (state.suspicion, at least one check), whether to wait, to ask an
 * operator, or to recover — and onto which hosts. `reachable`: hosts whose worker answered the last check.
 */
export function decide(state: WatchState, spec: ClusterSpec, reachable: Set<string>, now: number): Decision {
  const s = state.suspicion;
  if (!s) return { action: 'wait', phase: 'watching', reason: 'every VM answers' };
  const { settings } = state;
  const what = s.failures.map(describeFailure).join('; ');
  // Process exits are facts once seen twice; silence may be a worker restarting, so it gets the grace period.
  const slow = s.failures.filter((f) => f.kind === 'host-unreachable' || f.kind === 'vm-unresponsive');
  const graceEnds = s.since + settings.graceSeconds * 1000;
  if (s.checks < 2) return { action: 'wait', phase: 'suspect', reason: `${what} (confirming)` };
  if (slow.length && now < graceEnds) {
    return { action: 'wait', phase: 'suspect', reason: `${what} (grace period until ${new Date(graceEnds).toISOString()})` };
  }

  const deadHosts = [...new Set(slow.filter((f) => f.kind === 'host-unreachable').map((f) => f.host))].sort();
  const hostMap: Record<string, string> = {};
  const spares = (spec.spareHosts ?? []).filter((h) => reachable.has(h) && !deadHosts.includes(h));
  for (const host of deadHosts) {
    const fencingAllows = spec.fencing === 'unreachable-is-dead' || state.confirmedDead.includes(host);
    if (!fencingAllows) {
      return {
        action: 'needs-operator',
        reason:
          `host ${host} does not answer (${s.failures.find((f) => f.host === host)?.detail ?? 'unreachable'}); its VMs may still run there. ` +
          `Once it is sure they do not, confirm with \`vccr recover ${state.cluster} --host-dead ${host}\` (or bring its worker back)`,
      };
    }
    const spare = spares.find((h) => !Object.values(hostMap).includes(h)) ?? spares[0];
    if (!spare) {
      const listed = (spec.spareHosts ?? []).join(', ') || 'none in the spec';
      return { action: 'needs-operator', reason: `host ${host} is dead and no spare host answers (spare hosts: ${listed}); bring ${host} or a spare host back` };
    }
    hostMap[host] = spare;
  }

  const recent = recentRecoveries(state, now);
  if (recent >= settings.maxRecoveriesPerHour) {
    return {
      action: 'needs-operator',
      reason: `${recent} recoveries within the last hour (limit ${settings.maxRecoveriesPerHour}) and still failing (${what}); fix the cause, then run \`vccr recover ${state.cluster}\``,
    };
  }
  const last = state.recoveries.at(-1);
  if (last && recent > 0) {
    const notBefore = last.endedAt + settings.backoffSeconds * 1000 * 2 ** (recent - 1);
    if (now < notBefore) {
      return { action: 'wait', phase: state.retrying ? 'recovering' : 'suspect', reason: `${what} (back-off: next recovery not before ${new Date(notBefore).toISOString()})` };
    }
  }
  return { action: 'recover', hostMap, deadHosts, failures: s.failures };
}

/** The watch's current details (what its Web UI page shows): phase, why, what it suspects, recent recoveries. */
export function renderWatchDetails(state: WatchState): string {
  const lines = [`watch of cluster **${state.cluster}** · **${state.phase}** since ${new Date(state.since).toISOString()}`, state.reason];
  if (state.suspicion) lines.push('', `suspected since ${new Date(state.suspicion.since).toISOString()} (${state.suspicion.checks} checks):`, ...state.suspicion.failures.map((f) => `- ${describeFailure(f)}`));
  if (state.confirmedDead.length) lines.push('', `confirmed dead by an operator: ${state.confirmedDead.join(', ')}`);
  const recent = state.recoveries.slice(-5);
  if (recent.length) lines.push('', 'recent recoveries:', ...recent.map((r) => `- ${new Date(r.startedAt).toISOString()} ${r.outcome} in ${Math.round((r.endedAt - r.startedAt) / 100) / 10} s: ${r.detail}`));
  return lines.join('\n');
}
