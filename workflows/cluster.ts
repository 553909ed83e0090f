// The cluster record: one long-lived workflow per cluster. It remembers the spec, where each VM runs and
// the last checkpoint, and it is the cluster's lock: an operation (launch, checkpoint, restart, shutdown)
// runs only after its `acquire` update was accepted, and ends with a `release` signal. A second operation
// on a busy cluster is refused by the update's validator with a message naming the running one.
import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { VCCR_CLUSTER, VCCR_OPERATION, VCCR_PHASE } from '../common/search-attributes';
import {
  acquireUpdate,
  clusterStateQuery,
  noteSignal,
  releaseSignal,
  rolloverSignal,
  type AcquireRequest,
  type ClusterState,
} from '../common/messages';
import { renderClusterDetails } from './details';

const RECENT_LIMIT = 20;

export interface ClusterRecordInput {
  cluster: string;
  /** Carried over by continue-as-new. */
  state?: ClusterState;
}

export async function clusterRecord(input: ClusterRecordInput): Promise<void> {
  const state: ClusterState = input.state ?? { cluster: input.cluster, placement: {}, status: 'new', recent: [] };
  const publish = () => {
    upsertSearchAttributes([
      { key: VCCR_CLUSTER, value: state.cluster },
      { key: VCCR_OPERATION, value: 'cluster' },
      { key: VCCR_PHASE, value: state.lock ? `${state.lock.operation}` : state.status },
    ]);
    setCurrentDetails(renderClusterDetails(state));
  };
  publish();

  setHandler(clusterStateQuery, () => ({ format: 'vccr-cluster-state', version: 1, ...state }));

  // The validator rejects without touching history; the handler only records.
  setHandler(acquireUpdate, (req: AcquireRequest) => {
    state.lock = {
      operation: req.operation,
      workflowId: req.workflowId,
      runId: req.runId,
      since: Date.now(),
      ...(req.checkpointId ? { checkpointId: req.checkpointId } : {}),
    };
    if (req.operation === 'launch' && req.spec) {
      state.spec = req.spec;
      state.placement = Object.fromEntries(req.spec.vms.map((vm) => [vm.name, vm.host]));
      state.status = 'launching';
    } else if (!state.spec && req.spec) {
      state.spec = req.spec;
      state.placement = Object.fromEntries(req.spec.vms.map((vm) => [vm.name, vm.host]));
    }
    publish();
    // The guard clauses in the validator guarantee a spec here.
    const spec = state.spec;
    if (!spec) throw ApplicationFailure.nonRetryable('no spec recorded', 'InvalidState');
    return {
      spec,
      placement: state.placement,
      status: state.status,
      ...(state.lastCheckpointId ? { lastCheckpointId: state.lastCheckpointId } : {}),
    };
  }, { validator: validateAcquire(state) });

  setHandler(releaseSignal, (req) => {
    if (!state.lock || state.lock.workflowId !== req.workflowId) return; // stale or duplicate release
    const operation = state.lock.operation;
    state.lock = undefined;
    if (req.status) state.status = req.status;
    if (req.placement) state.placement = req.placement;
    if (operation === 'checkpoint' && req.outcome === 'completed' && req.checkpointId) state.lastCheckpointId = req.checkpointId;
    if (operation === 'restart' && req.outcome === 'completed' && req.checkpointId) state.lastCheckpointId = req.checkpointId;
    state.recent.push({
      operation,
      workflowId: req.workflowId,
      outcome: req.outcome,
      at: Date.now(),
      ...(req.checkpointId ? { checkpointId: req.checkpointId } : {}),
      ...(req.detail ? { detail: req.detail } : {}),
    });
    if (state.recent.length > RECENT_LIMIT) state.recent.splice(0, state.recent.length - RECENT_LIMIT);
    publish();
  });

  setHandler(noteSignal, (note) => {
    state.recent.push({ ...note, at: Date.now() });
    if (state.recent.length > RECENT_LIMIT) state.recent.splice(0, state.recent.length - RECENT_LIMIT);
    publish();
  });

  let rolloverRequested = false;
  setHandler(rolloverSignal, () => {
    rolloverRequested = true;
  });

  // Live forever; start a fresh history when this one grows long (or when asked to).
  await condition(() => rolloverRequested || workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > 5000);
  await condition(allHandlersFinished);
  await continueAsNew<typeof clusterRecord>({ cluster: state.cluster, state });
}

/** Refuses an acquire that would run two operations at once or make no sense in the cluster's state. */
function validateAcquire(state: ClusterState): (req: AcquireRequest) => void {
  return (req) => {
    const holder = state.lock;
    if (holder && holder.workflowId !== req.workflowId) {
      const stealing = req.stealFrom && req.stealFrom.workflowId === holder.workflowId && req.stealFrom.runId === holder.runId;
      if (!stealing) {
        throw ApplicationFailure.nonRetryable(
          `cluster ${state.cluster} is busy: ${holder.operation}${holder.checkpointId ? ` ${holder.checkpointId}` : ''} ` +
            `(workflow ${holder.workflowId}) has been running since ${new Date(holder.since).toISOString()}`,
          'ClusterBusy',
        );
      }
    }
    const retry = holder?.workflowId === req.workflowId;
    if (req.operation === 'launch') {
      if (!req.spec) throw ApplicationFailure.nonRetryable('launch needs a spec', 'InvalidInput');
      if (!retry && (state.status === 'running' || state.status === 'degraded' || state.status === 'launching')) {
        throw ApplicationFailure.nonRetryable(
          `cluster ${state.cluster} is already up (status ${state.status}); run \`vccr down ${state.cluster}\` first`,
          'ClusterAlreadyUp',
        );
      }
      return;
    }
    if (!state.spec && !req.spec) {
      throw ApplicationFailure.nonRetryable(`unknown cluster ${state.cluster}: it has never been launched`, 'UnknownCluster');
    }
    if (req.operation === 'checkpoint' && !retry && state.status !== 'running' && state.status !== 'degraded') {
      throw ApplicationFailure.nonRetryable(
        `cluster ${state.cluster} is ${state.status}: only a running cluster can be checkpointed`,
        'ClusterNotRunning',
      );
    }
  };
}
