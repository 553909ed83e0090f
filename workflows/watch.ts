// watchCluster: the long-lived watch of a protected cluster (id vccr-watch-<cluster>). Every few seconds
// it asks each host worker about its VMs (probe: a worker that does not pick the question up within
// seconds is not polling its queue), confirms what looks wrong, and then recovers the whole cluster
// (recoverCluster: fencing + restart from the newest checkpoint that verifies), within the rules of
// watch-decide.ts: never during a planned operation (the cluster lock is held) or after a planned
// `vccr down`; unreachable hosts only with the spec's fencing rule or an operator's word; back-off and a
// per-hour limit against storms. Its state is the `watchState` query and the VccrPhase search attribute.
import {
  ParentClosePolicy,
  allHandlersFinished,
  condition,
  continueAsNew,
  executeChild,
  log,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { watchInputSchema, type Failure, type WatchSettings } from '../common/protection';
import { VCCR_CLUSTER, VCCR_OPERATION, VCCR_PHASE } from '../common/search-attributes';
import type { ClusterState } from '../common/messages';
import type { ClusterSpec } from '../common/spec';
import { controllerActivities } from './proxies';
import { reasonOf, validateInput } from './validate';
import { decide, describeFailure, renderWatchDetails } from './watch-decide';
import { fenceHost, probeCluster } from './watch-probe';
import { configureWatchSignal, operatorRecoverUpdate, stopWatchSignal, watchStateQuery, type WatchPhase, type WatchState } from '../common/watch-messages';
import type { RecoveryResult } from './recover';
import { withSummary } from './summary';
import { isRecoveryRestart, recoveryWorkflowId } from '../common/ids';

const RECOVERIES_KEPT = 20;
/** While something looks wrong, look again this soon. */
const CONFIRM_AFTER_MS = 1000;
/** needs-operator is logged again this often while it lasts. */
const REMIND_EVERY_MS = 60_000;

export async function watchCluster(raw: unknown): Promise<WatchState> {
  const input = validateInput(watchInputSchema, raw, 'watchCluster');
  return new Watch(input.cluster, input.settings, input.carried as Partial<WatchState> | undefined).run();
}

class Watch {
  private readonly state: WatchState;
  private stopping = false;
  private wake = false;
  private remindedAt = 0;

  constructor(
    private readonly cluster: string,
    settings: WatchSettings,
    carried: Partial<WatchState> | undefined,
  ) {
    this.state = {
      cluster,
      phase: 'watching',
      reason: 'starting',
      since: Date.now(),
      confirmedDead: [],
      fencePending: [],
      retrying: false,
      countFrom: 0,
      recoveries: [],
      ...carried,
      settings,
    };
    setHandler(watchStateQuery, () => ({ format: 'vccr-watch-state', version: 1, ...this.state }));
    setHandler(stopWatchSignal, () => {
      this.stopping = true;
    });
    setHandler(configureWatchSignal, (next) => {
      this.state.settings = next;
      this.wake = true;
    });
    setHandler(operatorRecoverUpdate, (req) => {
      this.state.confirmedDead = [...new Set([...this.state.confirmedDead, ...req.deadHosts])].sort();
      this.state.countFrom = Date.now(); // the operator has looked: the per-hour limit starts afresh
      log.warn('operator asked for recovery', { cluster, deadHosts: req.deadHosts });
      this.wake = true;
      return { format: 'vccr-watch-state', version: 1, ...this.state };
    });
    this.publish();
  }

  async run(): Promise<WatchState> {
    while (!this.stopping) {
      try {
        await this.checkOnce();
      } catch (err) {
        // A check that could not be made (Temporal or the controller busy) is not evidence of anything.
        log.warn('watch check failed', { cluster: this.cluster, err: reasonOf(err) });
      }
      if (this.stopping) break;
      if (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > 2000) {
        await condition(allHandlersFinished);
        await continueAsNew<typeof watchCluster>({ cluster: this.cluster, settings: this.state.settings, carried: { ...this.state } });
      }
      this.wake = false;
      const every = this.state.settings.checkEverySeconds * 1000;
      await condition(() => this.wake || this.stopping, this.state.suspicion ? Math.min(CONFIRM_AFTER_MS, every) : every);
    }
    this.setPhase('stopped', 'protection was switched off');
    return this.state;
  }

  private publish(): void {
    setCurrentDetails(renderWatchDetails(this.state));
    upsertSearchAttributes([
      { key: VCCR_CLUSTER, value: this.cluster },
      { key: VCCR_OPERATION, value: 'watch' },
      { key: VCCR_PHASE, value: this.state.phase },
    ]);
  }

  private setPhase(phase: WatchPhase, reason: string): void {
    const changed = phase !== this.state.phase;
    if (changed) this.state.since = Date.now();
    this.state.phase = phase;
    this.state.reason = reason;
    if (changed) this.publish();
    else setCurrentDetails(renderWatchDetails(this.state)); // details are not history: cheap to refresh
    if (phase === 'needs-operator' && (changed || Date.now() - this.remindedAt >= REMIND_EVERY_MS)) {
      this.remindedAt = Date.now();
      log.error('cluster needs an operator', { cluster: this.cluster, reason });
    } else if (changed) log.info('watch phase', { cluster: this.cluster, phase, reason });
  }

  private async checkOnce(): Promise<void> {
    const { state, cluster } = this;
    const now = Date.now();
    const record = await withSummary(controllerActivities().quick, `read the cluster record of ${cluster}`).getClusterState({ cluster });
    state.lastCheckAt = now;
    if (!record?.spec) {
      state.suspicion = undefined;
      return this.setPhase('watching', 'no cluster record yet (launch it with `vccr up`)');
    }
    if (record.lock) return this.whileBusy(record, record.spec, now);
    if (state.retrying && this.operatorTookOver(record)) state.retrying = false;
    if (record.status !== 'running' && record.status !== 'degraded' && !state.retrying) {
      state.suspicion = undefined;
      return this.setPhase('watching', `cluster is ${record.status}: nothing to recover`);
    }
    await this.fenceReturnedHosts(record);
    const probe = await probeCluster(cluster, record.spec, record.placement, state.settings);
    state.confirmedDead = state.confirmedDead.filter((h) => !probe.reachable.has(h));
    if (!probe.failures.length) {
      state.suspicion = undefined;
      state.retrying = false;
      state.lastHealthyAt = now;
      return this.setPhase('watching', 'every VM and host answers');
    }
    this.suspect(probe.failures, now);
    const decision = decide(state, record.spec, probe.reachable, now);
    if (decision.action === 'wait') return this.setPhase(decision.phase, decision.reason);
    if (decision.action === 'needs-operator') return this.setPhase('needs-operator', decision.reason);
    await this.recover(decision.hostMap, decision.deadHosts, decision.failures);
  }

  private suspect(failures: Failure[], now: number): void {
    const s = this.state.suspicion;
    this.state.suspicion = s ? { ...s, checks: s.checks + 1, failures } : { since: now, checks: 1, failures };
  }

  /**
   * A planned operation holds the cluster: never act during one. Only whether the host workers answer is
   * checked meanwhile (a planned operation stops VMs, never workers), so that a host that died just before
   * or during it is recognised — and the recovery can start — as soon as the operation lets go.
   */
  private async whileBusy(record: ClusterState, spec: ClusterSpec, now: number): Promise<void> {
    const busy = `busy: ${record.lock?.operation} (${record.lock?.workflowId})`;
    const probe = await probeCluster(this.cluster, spec, record.placement, this.state.settings, true);
    const hosts = probe.failures.filter((f) => f.kind === 'host-unreachable');
    if (hosts.length) {
      this.suspect(hosts, now);
      if (this.state.phase !== 'needs-operator') this.setPhase('suspect', `${hosts.map(describeFailure).join('; ')} (${busy}; acting once it is done)`);
    } else if (this.state.phase !== 'needs-operator') {
      this.setPhase(this.state.retrying ? 'recovering' : this.state.suspicion ? 'suspect' : 'watching', busy);
    }
  }

  /** An operator launched, restarted or stopped the cluster since our last recovery: theirs to handle. */
  private operatorTookOver(record: ClusterState): boolean {
    const since = this.state.recoveries.at(-1)?.endedAt ?? 0;
    return record.recent.some((r) => r.at > since && !isRecoveryRestart(r.workflowId) && ['launch', 'restart', 'shutdown'].includes(r.operation));
  }

  /** Hosts whose VMs were moved away while they did not answer: once they answer, kill what they still run. */
  private async fenceReturnedHosts(record: ClusterState): Promise<void> {
    const spec = record.spec;
    if (!spec) return;
    const inUse = new Set(Object.values(record.placement));
    for (const host of [...this.state.fencePending]) {
      const killed = inUse.has(host) ? [] : await fenceHost(this.cluster, spec, host, this.state.settings).catch(() => undefined);
      if (killed === undefined) continue; // still unreachable
      this.state.fencePending = this.state.fencePending.filter((h) => h !== host);
      if (killed.length) log.warn('fenced a returning host: killed VMs it still ran', { cluster: this.cluster, host, vms: killed });
    }
  }

  private async recover(hostMap: Record<string, string>, deadHosts: string[], failures: Failure[]): Promise<void> {
    const { cluster, state } = this;
    const noticedAt = state.suspicion?.since ?? Date.now();
    const startedAt = Date.now();
    const workflowId = recoveryWorkflowId(cluster, new Date(startedAt).toISOString().replace(/[:.]/g, '-'));
    const moves = Object.entries(hostMap).map(([a, b]) => `${a}→${b}`);
    this.setPhase('recovering', `${failures.map(describeFailure).join('; ')}${moves.length ? `; moving ${moves.join(', ')}` : ''}`);
    try {
      const result = await executeChild<(input: unknown) => Promise<RecoveryResult>>('recoverCluster', {
        workflowId,
        taskQueue: workflowInfo().taskQueue,
        args: [{ cluster, hostMap, deadHosts, failures, noticedAt }],
        workflowTaskTimeout: '3 seconds',
        // A recovery half-way through a restart must finish even if the watch is stopped.
        parentClosePolicy: ParentClosePolicy.ABANDON,
      });
      this.remember({ workflowId, startedAt, endedAt: Date.now(), outcome: 'completed', checkpointId: result.checkpointId, placement: result.placement, detail: `recovered from ${result.checkpointId}` });
      state.fencePending = [...new Set([...state.fencePending, ...deadHosts])];
      state.suspicion = undefined;
      state.retrying = false;
      this.setPhase('watching', `recovered from ${result.checkpointId}`);
    } catch (err) {
      const reason = reasonOf(err);
      this.remember({ workflowId, startedAt, endedAt: Date.now(), outcome: 'failed', detail: reason });
      state.retrying = true;
      this.setPhase('recovering', `recovery failed (${reason}); trying again after a back-off`);
    }
  }

  private remember(summary: WatchState['recoveries'][number]): void {
    this.state.recoveries.push(summary);
    if (this.state.recoveries.length > RECOVERIES_KEPT) this.state.recoveries.splice(0, this.state.recoveries.length - RECOVERIES_KEPT);
  }
}
