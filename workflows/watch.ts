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
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { watchInputSchema, type Failure } from '../common/protection';
import { VCCR_CLUSTER, VCCR_OPERATION, VCCR_PHASE } from '../common/search-attributes';
import type { ClusterState } from './definitions';
import { controllerActivities } from './proxies';
import { reasonOf, validateInput } from './validate';
import { decide, describeFailure } from './watch-decide';
import { fenceHost, probeCluster } from './watch-probe';
import { configureWatchSignal, operatorRecoverUpdate, stopWatchSignal, watchStateQuery, type WatchPhase, type WatchState } from './watch-definitions';
import type { RecoveryResult } from './recover';

const RECOVERIES_KEPT = 20;
/** While something looks wrong, look again this soon. */
const CONFIRM_AFTER_MS = 1000;
/** needs-operator is logged again this often while it lasts. */
const REMIND_EVERY_MS = 60_000;

export async function watchCluster(raw: unknown): Promise<WatchState> {
  const input = validateInput(watchInputSchema, raw, 'watchCluster');
  const cluster = input.cluster;
  const state: WatchState = {
    cluster,
    phase: 'watching',
    reason: 'starting',
    since: Date.now(),
    confirmedDead: [],
    fencePending: [],
    retrying: false,
    countFrom: 0,
    recoveries: [],
    ...(input.carried as Partial<WatchState> | undefined),
    settings: input.settings,
  };
  let stopping = false;
  let wake = false;
  let remindedAt = 0;

  const publish = () =>
    upsertSearchAttributes([
      { key: VCCR_CLUSTER, value: cluster },
      { key: VCCR_OPERATION, value: 'watch' },
      { key: VCCR_PHASE, value: state.phase },
    ]);
  const setPhase = (phase: WatchPhase, reason: string) => {
    const changed = phase !== state.phase;
    if (changed) state.since = Date.now();
    state.phase = phase;
    state.reason = reason;
    if (changed) publish();
    if (phase === 'needs-operator' && (changed || Date.now() - remindedAt >= REMIND_EVERY_MS)) {
      remindedAt = Date.now();
      log.error('cluster needs an operator', { cluster, reason });
    } else if (changed) log.info('watch phase', { cluster, phase, reason });
  };
  publish();

  setHandler(watchStateQuery, () => state);
  setHandler(stopWatchSignal, () => {
    stopping = true;
  });
  setHandler(configureWatchSignal, (settings) => {
    state.settings = settings;
    wake = true;
  });
  setHandler(operatorRecoverUpdate, (req) => {
    state.confirmedDead = [...new Set([...state.confirmedDead, ...req.deadHosts])].sort();
    state.countFrom = Date.now(); // the operator has looked: the per-hour limit starts afresh
    log.warn('operator asked for recovery', { cluster, deadHosts: req.deadHosts });
    wake = true;
    return state;
  });

  while (!stopping) {
    try {
      await checkOnce();
    } catch (err) {
      // A check that could not be made (Temporal or the controller busy) is not evidence of anything.
      log.warn('watch check failed', { cluster, err: reasonOf(err) });
    }
    if (stopping) break;
    if (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > 2000) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof watchCluster>({ cluster, settings: state.settings, carried: { ...state } });
    }
    wake = false;
    const delay = state.suspicion ? Math.min(CONFIRM_AFTER_MS, state.settings.checkEverySeconds * 1000) : state.settings.checkEverySeconds * 1000;
    await condition(() => wake || stopping, delay);
  }
  setPhase('stopped', 'protection was switched off');
  return state;

  async function checkOnce(): Promise<void> {
    const now = Date.now();
    const record = await controllerActivities().quick.getClusterState({ cluster });
    state.lastCheckAt = now;
    if (!record?.spec) {
      state.suspicion = undefined;
      return setPhase('watching', 'no cluster record yet (launch it with `vccr up`)');
    }
    if (record.lock) {
      // A planned operation holds the cluster: never act during one (what looked wrong is looked at again after).
      if (state.phase !== 'needs-operator') setPhase(state.retrying ? 'recovering' : 'watching', `busy: ${record.lock.operation} (${record.lock.workflowId})`);
      return;
    }
    if (state.retrying && operatorTookOver(record)) state.retrying = false;
    if (record.status !== 'running' && record.status !== 'degraded' && !state.retrying) {
      state.suspicion = undefined;
      return setPhase('watching', `cluster is ${record.status}: nothing to recover`);
    }
    await fenceReturnedHosts(record);
    const spec = record.spec;
    const probe = await probeCluster(cluster, spec, record.placement, state.settings);
    state.confirmedDead = state.confirmedDead.filter((h) => !probe.reachable.has(h));
    if (!probe.failures.length) {
      state.suspicion = undefined;
      state.retrying = false;
      state.lastHealthyAt = now;
      return setPhase('watching', 'every VM and host answers');
    }
    state.suspicion = state.suspicion
      ? { ...state.suspicion, checks: state.suspicion.checks + 1, failures: probe.failures }
      : { since: now, checks: 1, failures: probe.failures };
    const decision = decide(state, spec, probe.reachable, now);
    if (decision.action === 'wait') return setPhase(decision.phase, decision.reason);
    if (decision.action === 'needs-operator') return setPhase('needs-operator', decision.reason);
    await recover(decision.hostMap, decision.deadHosts, decision.failures);
  }

  /** An operator launched, restarted or stopped the cluster since our last recovery: theirs to handle. */
  function operatorTookOver(record: ClusterState): boolean {
    const since = state.recoveries.at(-1)?.endedAt ?? 0;
    return record.recent.some((r) => r.at > since && r.operation !== 'recover' && !r.workflowId.includes('-restart-recovery-') && ['launch', 'restart', 'shutdown'].includes(r.operation));
  }

  /** Hosts whose VMs were moved away while they did not answer: once they answer, kill what they still run. */
  async function fenceReturnedHosts(record: ClusterState): Promise<void> {
    const spec = record.spec;
    if (!spec) return;
    const inUse = new Set(Object.values(record.placement));
    for (const host of [...state.fencePending]) {
      if (inUse.has(host)) {
        state.fencePending = state.fencePending.filter((h) => h !== host);
        continue;
      }
      const killed = await fenceHost(cluster, spec, host, state.settings).catch(() => undefined);
      if (killed === undefined) continue; // still unreachable
      state.fencePending = state.fencePending.filter((h) => h !== host);
      if (killed.length) log.warn('fenced a returning host: killed VMs it still ran', { cluster, host, vms: killed });
    }
  }

  async function recover(hostMap: Record<string, string>, deadHosts: string[], failures: Failure[]): Promise<void> {
    const noticedAt = state.suspicion?.since ?? Date.now();
    const startedAt = Date.now();
    const workflowId = `vccr-${cluster}-recover-${new Date(startedAt).toISOString().replace(/[:.]/g, '-')}`;
    setPhase('recovering', `${failures.map(describeFailure).join('; ')}${Object.keys(hostMap).length ? `; moving ${Object.entries(hostMap).map(([a, b]) => `${a}→${b}`).join(', ')}` : ''}`);
    try {
      const result = await executeChild<(input: unknown) => Promise<RecoveryResult>>('recoverCluster', {
        workflowId,
        taskQueue: workflowInfo().taskQueue,
        args: [{ cluster, hostMap, deadHosts, failures, noticedAt }],
        workflowTaskTimeout: '3 seconds',
        // A recovery half-way through a restart must finish even if the watch is stopped.
        parentClosePolicy: ParentClosePolicy.ABANDON,
      });
      remember({ workflowId, startedAt, endedAt: Date.now(), outcome: 'completed', checkpointId: result.checkpointId, placement: result.placement, detail: `recovered from ${result.checkpointId}` });
      state.fencePending = [...new Set([...state.fencePending, ...deadHosts])];
      state.suspicion = undefined;
      state.retrying = false;
      setPhase('watching', `recovered from ${result.checkpointId}`);
    } catch (err) {
      const reason = reasonOf(err);
      remember({ workflowId, startedAt, endedAt: Date.now(), outcome: 'failed', detail: reason });
      state.retrying = true;
      setPhase('recovering', `recovery failed (${reason}); trying again after a back-off`);
    }
  }

  function remember(summary: WatchState['recoveries'][number]): void {
    state.recoveries.push(summary);
    if (state.recoveries.length > RECOVERIES_KEPT) state.recoveries.splice(0, state.recoveries.length - RECOVERIES_KEPT);
  }
}
