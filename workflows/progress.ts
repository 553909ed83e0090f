// Progress of one operation: the `progress` query's answer, kept up to date as phases and VMs move on,
// mirrored into search attributes so the Web UI can filter operations by cluster, phase and checkpoint,
// and into the workflow's current details (details.ts) so its Web UI page shows it without a query.
import { setCurrentDetails, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import { VCCR_CHECKPOINT_ID, VCCR_CLUSTER, VCCR_OPERATION, VCCR_PHASE } from '../common/search-attributes';
import {
  progressQuery,
  transferProgressSignal,
  type OperationKind,
  type OperationProgress,
  type VmPhaseState,
} from '../common/messages';
import { renderDetails } from './details';
import { applyTransferReports } from './transfer-progress';

export class ProgressTracker {
  readonly state: OperationProgress;
  /** VMs whose byte counts their phase's result set: late transfer reports leave them alone. */
  private readonly settled = new Set<string>();

  constructor(operation: OperationKind, cluster: string, checkpointId?: string) {
    this.state = {
      format: 'vccr-progress',
      version: 1,
      operation,
      cluster,
      ...(checkpointId ? { checkpointId } : {}),
      phase: 'starting',
      vms: {},
      phases: {},
      bytesDone: 0,
      bytesTotal: 0,
      startedAt: Date.now(),
    };
    setHandler(progressQuery, () => this.state);
    setHandler(transferProgressSignal, (reports) => {
      applyTransferReports(this.state.vms, reports, this.settled);
      this.sumBytes();
      this.showDetails();
    });
    this.publish();
  }

  setCheckpointId(id: string): void {
    this.state.checkpointId = id;
    this.publish();
  }

  addVms(placement: Record<string, string>): void {
    for (const [name, host] of Object.entries(placement)) {
      this.state.vms[name] = { host, state: 'pending', bytesDone: 0, bytesTotal: 0 };
    }
    this.showDetails();
  }

  /** Starts a phase (ending the previous one). */
  phase(name: string): void {
    const now = Date.now();
    const previous = this.state.phases[this.state.phase];
    if (previous && previous.end === undefined) previous.end = now;
    this.state.phase = name;
    this.state.phases[name] = { start: now };
    this.publish();
  }

  endPhase(): void {
    const current = this.state.phases[this.state.phase];
    if (current && current.end === undefined) current.end = Date.now();
    this.showDetails();
  }

  vms(names: Iterable<string>, state: VmPhaseState): void {
    for (const name of names) {
      const vm = this.state.vms[name];
      if (vm) vm.state = state;
    }
    this.showDetails();
  }

  setBytes(name: string, done: number, total: number): void {
    const vm = this.state.vms[name];
    if (!vm) return;
    vm.bytesDone = done;
    vm.bytesTotal = total;
    if (total > 0 && done === total) this.settled.add(name);
    else this.settled.delete(name);
    this.sumBytes();
    this.showDetails();
  }

  fail(error: string): void {
    this.state.error = error;
    this.showDetails();
  }

  private sumBytes(): void {
    let done = 0;
    let total = 0;
    for (const vm of Object.values(this.state.vms)) {
      done += vm.bytesDone;
      total += vm.bytesTotal;
    }
    this.state.bytesDone = done;
    this.state.bytesTotal = total;
  }

  /** Current details are not history: setting them often costs nothing and never affects replay. */
  private showDetails(): void {
    setCurrentDetails(renderDetails(this.state, Date.now()));
  }

  private publish(): void {
    this.showDetails();
    upsertSearchAttributes([
      { key: VCCR_CLUSTER, value: this.state.cluster },
      { key: VCCR_OPERATION, value: this.state.operation },
      { key: VCCR_PHASE, value: this.state.phase },
      ...(this.state.checkpointId ? [{ key: VCCR_CHECKPOINT_ID, value: this.state.checkpointId }] : []),
    ]);
  }
}
