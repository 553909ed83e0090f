// Records workflow histories from a running test bed, as `temporal workflow show --output json` writes
// them, for the replay test (test/replay.test.ts). Each operation is started with a fixed workflow id,
// awaited, checked against the outcome the case expects, and its history written to `<dir>/<name>.json`.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { WorkflowFailedError } from '@temporalio/client';
import type * as workflows from '../workflows';
import { WORKFLOW_TASK_TIMEOUT } from '../client';
import { clusterWorkflowId } from '../common/ids';
import { rolloverSignal } from '../common/messages';
import { stopWatchSignal, watchStateQuery } from '../common/watch-messages';
import { sleep } from '../node/proc';
import { temporalCliPath } from './dev-server';
import type { TestBed } from './testbed';

export type WorkflowType = keyof typeof workflows;
export type WorkflowInput<T extends WorkflowType> = Parameters<(typeof workflows)[T]>[0];

export interface RecordedHistory {
  name: string;
  workflowType: string;
  workflowId: string;
  outcome: string;
  events: number;
}

export class HistoryRecorder {
  readonly recorded: RecordedHistory[] = [];

  constructor(
    readonly bed: TestBed,
    private readonly dir: string,
  ) {}

  /** Runs one operation to its end, checks its outcome and records its history as `<name>.json`. */
  async operation<T extends WorkflowType>(name: string, type: T, input: WorkflowInput<T>, expect: 'completed' | 'failed'): Promise<void> {
    const client = await this.bed.temporal();
    const workflowId = `vccr-rec-${name}`;
    const handle = await client.workflow.start(type, {
      taskQueue: this.bed.vccr.settings.controllerTaskQueue,
      workflowId,
      args: [input],
      workflowTaskTimeout: WORKFLOW_TASK_TIMEOUT,
    });
    const outcome = await handle.result().then(
      () => 'completed',
      (err: unknown) => {
        if (err instanceof WorkflowFailedError) return 'failed';
        throw err;
      },
    );
    if (outcome !== expect) {
      // Kept for a look at what happened (the bed's folder is removed).
      const kept = join(tmpdir(), `vccr-unexpected-${name}.json`);
      writeFileSync(kept, this.show(workflowId, handle.firstExecutionRunId));
      throw new Error(`${name}: ${type} ${outcome}, the case expects it ${expect} (its history: ${kept})`);
    }
    this.save(name, type, workflowId, handle.firstExecutionRunId, outcome);
  }

  /**
   * Makes the cluster record continue-as-new now (the `rollover` signal) and records the run that ended,
   * its last event being the continue-as-new.
   */
  async rollover(name: string, cluster: string): Promise<void> {
    const handle = (await this.bed.temporal()).workflow.getHandle(clusterWorkflowId(cluster));
    const { runId } = await handle.describe();
    await handle.signal(rolloverSignal);
    const deadline = Date.now() + 30_000;
    while ((await (await this.bed.temporal()).workflow.getHandle(clusterWorkflowId(cluster), runId).describe()).status.name === 'RUNNING') {
      if (Date.now() > deadline) throw new Error(`the cluster record of ${cluster} did not continue-as-new within 30 s`);
      await sleep(50);
    }
    this.save(name, 'clusterRecord', clusterWorkflowId(cluster), runId, 'continued-as-new');
  }

  /** Records the cluster record's current run as it is now (still running: it lives as long as the cluster). */
  async clusterRecord(name: string, cluster: string): Promise<void> {
    const { runId } = await (await this.bed.temporal()).workflow.getHandle(clusterWorkflowId(cluster)).describe();
    this.save(name, 'clusterRecord', clusterWorkflowId(cluster), runId, 'running');
  }

  /** Runs a cluster's watch for a few checks of its (healthy) cluster, stops it, and records it. */
  async watch(name: string, cluster: string): Promise<void> {
    const client = await this.bed.temporal();
    const handle = await client.workflow.start('watchCluster', {
      taskQueue: this.bed.vccr.settings.controllerTaskQueue,
      workflowId: `vccr-rec-${name}`,
      args: [{ cluster, settings: { checkEverySeconds: 1 } }],
      workflowTaskTimeout: WORKFLOW_TASK_TIMEOUT,
    });
    const deadline = Date.now() + 30_000;
    while ((await handle.query(watchStateQuery)).lastHealthyAt === undefined) {
      if (Date.now() > deadline) throw new Error(`${name}: the watch saw no healthy cluster within 30 s`);
      await sleep(200);
    }
    await sleep(2500);
    await handle.signal(stopWatchSignal);
    await handle.result();
    this.save(name, 'watchCluster', handle.workflowId, handle.firstExecutionRunId, 'completed');
  }

  /** The history as the Temporal CLI writes it. */
  private show(workflowId: string, runId: string): string {
    return execFileSync(
      temporalCliPath(),
      ['workflow', 'show', '--address', this.bed.server.address, '--workflow-id', workflowId, '--run-id', runId, '--output', 'json'],
      { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 },
    );
  }

  private save(name: string, workflowType: string, workflowId: string, runId: string, outcome: string): void {
    const json = this.show(workflowId, runId);
    const events = (JSON.parse(json) as { events?: unknown[] }).events?.length ?? 0;
    if (events === 0) throw new Error(`${name}: the history of ${workflowId} (run ${runId}) has no events`);
    writeFileSync(join(this.dir, `${name}.json`), json);
    this.recorded.push({ name, workflowType, workflowId, outcome, events });
  }
}
