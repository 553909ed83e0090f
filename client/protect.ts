// Continuous protection from the client: the cluster's Temporal Schedule (vccr-protect-<cluster>, visible
// and controllable on the Web UI's Schedules page and with `temporal schedule …`) and its watch workflow.
//
//   await vccr.protection.protect('demo', { every: '10m', retention: { keepLast: 6 } });
//   console.log(await vccr.protection.status('demo'));
import {
  ScheduleNotFoundError,
  WorkflowNotFoundError,
  type Client,
  type ScheduleDescription,
  type ScheduleOptionsStartWorkflowAction,
  type Workflow,
} from '@temporalio/client';
import { z } from 'zod';
import { parseOrThrow } from '../common/errors';
import { nameSchema } from '../common/names';
import {
  LIVE_CHECKPOINTS_AVAILABLE,
  formatDuration,
  protectRunInputSchema,
  retentionPolicySchema,
  watchSettingsSchema,
  type CheckpointMode,
  type RetentionPolicy,
  type WatchSettings,
} from '../common/protection';
import { VCCR_CLUSTER, VCCR_OPERATION } from '../common/search-attributes';
import { clusterWorkflowId, protectRunWorkflowId, protectScheduleId, watchWorkflowId } from '../common/ids';
import type { TemporalSettings } from '../node/temporal-config';
import type { ProtectRunResult } from '../workflows/protect';
import { clusterStateQuery } from '../common/messages';
import { configureWatchSignal, operatorRecoverUpdate, stopWatchSignal, watchStateQuery, type WatchState } from '../common/watch-messages';
import { EXIT, VccrError, toVccrError } from './errors';
import { WORKFLOW_TASK_TIMEOUT } from './operations';

export interface ProtectOptions {
  /** Time between checkpoints, in ms. */
  everyMs: number;
  /** Random delay added to each run, in ms (default: a tenth of the interval, at most a minute). */
  jitterMs?: number;
  live?: boolean;
  retention?: Partial<RetentionPolicy>;
  watch?: Partial<WatchSettings>;
}

export interface ScheduledRun {
  workflowId: string;
  scheduledAt: string;
  status: string;
  /** One line: the checkpoint and the retention outcome, or why it failed. */
  outcome?: string;
}

export interface ProtectionStatus {
  cluster: string;
  schedule?: {
    scheduleId: string;
    everyMs: number;
    jitterMs: number;
    mode: CheckpointMode;
    retention: RetentionPolicy;
    paused: boolean;
    note?: string;
    nextRuns: string[];
    recent: ScheduledRun[];
    actionsTaken: number;
    skippedOverlap: number;
  };
  watch?: WatchState;
}

const actionArgsSchema = z.tuple([protectRunInputSchema]);

export class ProtectionClient {
  constructor(
    private readonly client: Client,
    private readonly settings: TemporalSettings,
  ) {}

  /** Creates or updates the Schedule and starts (or reconfigures) the watch. */
  async protect(cluster: string, options: ProtectOptions): Promise<ProtectionStatus> {
    const spec = await this.requireCluster(cluster);
    if (options.live && !LIVE_CHECKPOINTS_AVAILABLE) {
      throw new VccrError('--live: live checkpoints are not available in this version; protect without --live (stop-and-save checkpoints)', 'InvalidInput', EXIT.usage);
    }
    if (!Number.isInteger(options.everyMs) || options.everyMs < 1000) throw new VccrError('--every must be at least 1s', 'InvalidInput', EXIT.usage);
    const input = parseOrThrowVccr(protectRunInputSchema, { cluster, mode: options.live ? 'live' : 'stop', retention: options.retention ?? undefined }, 'protection');
    const watchSettings = parseOrThrowVccr(watchSettingsSchema, options.watch ?? {}, 'watch settings');
    const jitterMs = options.jitterMs ?? Math.min(60_000, Math.floor(options.everyMs / 10));
    const action: ScheduleOptionsStartWorkflowAction<Workflow> = {
      type: 'startWorkflow',
      workflowType: 'protectCluster',
      workflowId: protectRunWorkflowId(cluster),
      taskQueue: this.settings.controllerTaskQueue,
      args: [input],
      workflowTaskTimeout: WORKFLOW_TASK_TIMEOUT,
      staticSummary: `scheduled checkpoint of ${cluster} · every ${formatDuration(options.everyMs)} · keep last ${input.retention.keepLast}, hourly ${input.retention.keepHourly}, daily ${input.retention.keepDaily}`,
      typedSearchAttributes: [
        { key: VCCR_CLUSTER, value: cluster },
        { key: VCCR_OPERATION, value: 'protect' },
      ],
    };
    const scheduleSpec = { intervals: [{ every: options.everyMs }], jitter: jitterMs };
    // SKIP: a checkpoint still running when the next is due is never doubled; the due one is dropped.
    const policies = { overlap: 'SKIP' as const, catchupWindow: Math.max(60_000, options.everyMs), pauseOnFailure: false };
    const handle = this.client.schedule.getHandle(protectScheduleId(cluster));
    try {
      await handle.update((previous) => ({ spec: scheduleSpec, action, policies, state: { paused: previous.state.paused, ...(previous.state.note ? { note: previous.state.note } : {}) } }));
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw toVccrError(err);
      await this.client.schedule
        .create({ scheduleId: protectScheduleId(cluster), spec: scheduleSpec, action, policies, memo: { cluster, store: spec.store } })
        .catch((e: unknown) => {
          throw toVccrError(e);
        });
    }
    const watch = await this.client.workflow.start('watchCluster', {
      workflowId: watchWorkflowId(cluster),
      taskQueue: this.settings.controllerTaskQueue,
      args: [{ cluster, settings: watchSettings }],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowTaskTimeout: WORKFLOW_TASK_TIMEOUT,
      staticSummary: `watch of ${cluster} · recovers it when a VM or a host dies`,
    });
    await watch.signal(configureWatchSignal, watchSettings);
    return this.status(cluster);
  }

  async status(cluster: string): Promise<ProtectionStatus> {
    parseOrThrowVccr(nameSchema, cluster, 'cluster name');
    const [schedule, watch] = await Promise.all([this.describeSchedule(cluster), this.watchState(cluster)]);
    return { cluster, ...(schedule ? { schedule } : {}), ...(watch ? { watch } : {}) };
  }

  async pause(cluster: string, note = 'paused with vccr protect --pause'): Promise<ProtectionStatus> {
    await this.onSchedule(cluster, (h) => h.pause(note));
    return this.status(cluster);
  }

  async resume(cluster: string): Promise<ProtectionStatus> {
    await this.onSchedule(cluster, (h) => h.unpause('resumed with vccr protect --resume'));
    return this.status(cluster);
  }

  /** Runs the scheduled workflow now (skipped if one is still running: the overlap policy). */
  async trigger(cluster: string): Promise<ProtectionStatus> {
    await this.onSchedule(cluster, (h) => h.trigger('SKIP'));
    return this.status(cluster);
  }

  /** Deletes the Schedule and stops the watch; checkpoints are kept. */
  async off(cluster: string): Promise<ProtectionStatus> {
    parseOrThrowVccr(nameSchema, cluster, 'cluster name');
    await this.client.schedule.getHandle(protectScheduleId(cluster)).delete().catch((err: unknown) => {
      if (!(err instanceof ScheduleNotFoundError)) throw toVccrError(err);
    });
    await this.client.workflow
      .getHandle(watchWorkflowId(cluster))
      .signal(stopWatchSignal)
      .catch((err: unknown) => {
        if (!(err instanceof WorkflowNotFoundError)) throw toVccrError(err);
      });
    return { cluster };
  }

  /** An operator's go-ahead to the watch: `deadHosts` are confirmed dead; the recovery limit starts afresh. */
  async recover(cluster: string, deadHosts: string[] = []): Promise<WatchState> {
    const spec = await this.requireCluster(cluster);
    for (const host of deadHosts) {
      parseOrThrowVccr(nameSchema, host, '--host-dead');
      if (!(host in spec.hosts)) throw new VccrError(`--host-dead ${host}: cluster ${cluster} has no host ${host} (hosts: ${Object.keys(spec.hosts).join(', ')})`, 'InvalidInput', EXIT.usage);
    }
    try {
      return await this.client.workflow.getHandle(watchWorkflowId(cluster)).executeUpdate(operatorRecoverUpdate, { args: [{ deadHosts }] });
    } catch (err) {
      if (err instanceof WorkflowNotFoundError || /not found|already completed/i.test((err as Error).message)) {
        throw new VccrError(`cluster ${cluster} is not protected (no watch is running): \`vccr protect ${cluster} --every …\` first, or restart it by hand with \`vccr restart\``, 'NotProtected', EXIT.notFound);
      }
      throw toVccrError(err);
    }
  }

  async watchState(cluster: string): Promise<WatchState | undefined> {
    const handle = this.client.workflow.getHandle(watchWorkflowId(cluster));
    try {
      if ((await handle.describe()).status.name !== 'RUNNING') return undefined;
      return await handle.query(watchStateQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw toVccrError(err);
    }
  }

  private async requireCluster(cluster: string) {
    parseOrThrowVccr(nameSchema, cluster, 'cluster name');
    let spec;
    try {
      spec = (await this.client.workflow.getHandle(clusterWorkflowId(cluster)).query(clusterStateQuery)).spec;
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw toVccrError(err);
    }
    if (!spec) throw new VccrError(`unknown cluster ${cluster}: no cluster record in namespace ${this.settings.namespace} (launch it with \`vccr up\`)`, 'UnknownCluster', EXIT.notFound);
    return spec;
  }

  private async onSchedule(cluster: string, step: (handle: ReturnType<Client['schedule']['getHandle']>) => Promise<void>): Promise<void> {
    parseOrThrowVccr(nameSchema, cluster, 'cluster name');
    try {
      await step(this.client.schedule.getHandle(protectScheduleId(cluster)));
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) throw new VccrError(`cluster ${cluster} is not protected: no schedule ${protectScheduleId(cluster)}`, 'NotProtected', EXIT.notFound);
      throw toVccrError(err);
    }
  }

  private async describeSchedule(cluster: string): Promise<ProtectionStatus['schedule']> {
    let d: ScheduleDescription;
    try {
      d = await this.client.schedule.getHandle(protectScheduleId(cluster)).describe();
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) return undefined;
      throw toVccrError(err);
    }
    const args = actionArgsSchema.safeParse(d.action.args);
    const input = args.success ? args.data[0] : protectRunInputSchema.parse({ cluster });
    const recent = await Promise.all(d.info.recentActions.slice(-5).map((a) => this.describeRun(a.action.workflow.workflowId, a.action.workflow.firstExecutionRunId, a.scheduledAt)));
    return {
      scheduleId: d.scheduleId,
      everyMs: d.spec.intervals?.[0]?.every ?? 0,
      jitterMs: d.spec.jitter ?? 0,
      mode: input.mode,
      retention: retentionPolicySchema.parse(input.retention),
      paused: d.state.paused,
      ...(d.state.note ? { note: d.state.note } : {}),
      nextRuns: d.info.nextActionTimes.slice(0, 5).map((t) => t.toISOString()),
      recent,
      actionsTaken: d.info.numActionsTaken,
      skippedOverlap: d.info.numActionsSkippedOverlap,
    };
  }

  private async describeRun(workflowId: string, runId: string, scheduledAt: Date): Promise<ScheduledRun> {
    const handle = this.client.workflow.getHandle(workflowId, runId);
    const base = { workflowId, scheduledAt: scheduledAt.toISOString() };
    try {
      const status = (await handle.describe()).status.name;
      if (status === 'COMPLETED') return { ...base, status, outcome: summarizeRun((await handle.result()) as ProtectRunResult) };
      if (status === 'FAILED') return { ...base, status, outcome: await handle.result().then(() => '', (err: unknown) => toVccrError(err).message) };
      return { ...base, status };
    } catch {
      return { ...base, status: 'UNKNOWN' };
    }
  }
}

function parseOrThrowVccr<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  try {
    return parseOrThrow(schema, value, what);
  } catch (err) {
    throw new VccrError((err as Error).message, 'InvalidInput', EXIT.usage);
  }
}

/** One line about a scheduled run's outcome. */
export function summarizeRun(r: ProtectRunResult): string {
  const c = r.checkpoint;
  const checkpoint = 'skipped' in c ? `checkpoint skipped (${c.skipped})` : 'failed' in c ? `checkpoint failed (${c.failed})` : `checkpoint ${c.checkpointId}${c.verified ? ' verified' : ' NOT VERIFIED'}`;
  const t = r.retention;
  const retention = 'skipped' in t ? `retention skipped (${t.skipped})` : `kept ${t.kept.length}, deleted ${t.deleted.length}, ${t.merges.length} merges, longest chain ${t.longestChain}`;
  return `${checkpoint}; ${retention}${r.modeNote ? `; ${r.modeNote}` : ''}`;
}
