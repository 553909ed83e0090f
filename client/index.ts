// The VCCR TypeScript client: every operation of the CLI as a typed method.
//
//   const vccr = await VccrClient.connect({ address: 'localhost:7233' });
//   await vccr.up(spec);
//   const ckpt = await vccr.checkpoint('demo', { onProgress: (p) => console.log(p.phase) });
//   await vccr.restart('demo', { checkpointId: ckpt.checkpointId });
//   await vccr.close();
import { Client, Connection, WorkflowExecutionAlreadyStartedError, type WorkflowHandle } from '@temporalio/client';
import { randomBytes } from 'node:crypto';
import { parseOrThrow, InvalidInputError } from '../common/errors';
import { checkpointIdSchema, defaultCheckpointId, nameSchema } from '../common/names';
import { clusterSpecSchema, type ClusterSpecInput } from '../common/spec';
import { howToPointAtTemporal, temporalSettings, tlsOption, type TemporalFlags, type TemporalSettings } from '../common/temporal-config';
import type { CheckpointResult } from '../workflows/checkpoint';
import type { RestartResult } from '../workflows/restart';
import type { LaunchResult } from '../workflows/launch';
import type { ShutdownResult } from '../workflows/shutdown';
import type { InspectResult } from '../workflows/inspect';
import type { ListCheckpointsReply, VerifyReport, DeleteReport, GarbageReport } from '../activities/controller/types';
import type { Manifest, ResumeRecord } from '../common/manifest';
import { clusterStateQuery, clusterWorkflowId, progressQuery, type ClusterState, type OperationProgress } from '../workflows/definitions';
import { EXIT, VccrError, toVccrError } from './errors';

export { EXIT, VccrError } from './errors';

export const WORKFLOW_TASK_TIMEOUT = '3 seconds';
export type { CheckpointResult, RestartResult, LaunchResult, ShutdownResult, InspectResult, OperationProgress, ClusterState, Manifest };

/** A checked Temporal address, namespace and TLS material: see VccrClient.target. */
export interface ConnectTarget {
  settings: TemporalSettings;
  tls: ReturnType<typeof tlsOption>;
}

export interface WatchOptions {
  /** Called with the operation's progress every `pollMs` while it runs. */
  onProgress?: (progress: OperationProgress) => void;
  pollMs?: number;
  /** Return once started instead of waiting for the result. */
  noWait?: boolean;
}

export interface RestartOptions extends WatchOptions {
  checkpointId?: string;
  hostMap?: Record<string, string>;
  force?: boolean;
  store?: string;
}

export class VccrClient {
  private constructor(
    readonly client: Client,
    readonly settings: TemporalSettings,
  ) {}

  static async connect(flags: TemporalFlags = {}): Promise<VccrClient> {
    return VccrClient.open(VccrClient.target(flags));
  }

  /**
   * Where to connect, checked without connecting: the address and namespace are well-formed and the TLS
   * files readable. Bad settings are bad input (exit code 2), not an unreachable server.
   */
  static target(flags: TemporalFlags = {}): ConnectTarget {
    try {
      const settings = temporalSettings(flags);
      return { settings, tls: tlsOption(settings) };
    } catch (err) {
      throw new VccrError((err as Error).message, 'InvalidInput', EXIT.usage);
    }
  }

  static async open(target: ConnectTarget): Promise<VccrClient> {
    const { settings, tls } = target;
    try {
      const connection = await Connection.connect({ address: settings.address, connectTimeout: 5000, ...(tls ? { tls } : {}) });
      return new VccrClient(new Client({ connection, namespace: settings.namespace }), settings);
    } catch (err) {
      const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
      throw new VccrError(
        `cannot reach Temporal at ${settings.address} (${(err as Error).message}${cause})\n  ${howToPointAtTemporal('vccr')}`,
        'Unreachable',
        EXIT.unreachable,
      );
    }
  }

  async close(): Promise<void> {
    await this.client.connection.close();
  }

  /** Launches a cluster from its spec (validated here first). */
  async up(specInput: unknown, watch: WatchOptions = {}): Promise<LaunchResult | { workflowId: string }> {
    const spec = this.validate(() => parseOrThrow(clusterSpecSchema, specInput, 'cluster spec'));
    await this.refuseIfBusy(spec.cluster, { mustExist: false });
    return this.run('launchCluster', `vccr-${spec.cluster}-launch-${stamp()}`, [{ spec: specInput as ClusterSpecInput }], watch);
  }

  async checkpoint(cluster: string, options: WatchOptions & { checkpointId?: string } = {}): Promise<CheckpointResult | { workflowId: string; checkpointId: string }> {
    this.validate(() => parseOrThrow(nameSchema, cluster, 'cluster name'));
    if (options.checkpointId !== undefined) this.validate(() => parseOrThrow(checkpointIdSchema, options.checkpointId, 'checkpoint id'));
    const checkpointId = options.checkpointId ?? defaultCheckpointId(Date.now(), randomBytes(8).toString('hex'));
    await this.refuseIfBusy(cluster);
    const result = await this.run<CheckpointResult>('checkpointCluster', `vccr-${cluster}-checkpoint-${checkpointId}`, [{ cluster, checkpointId }], options);
    return 'workflowId' in result ? { ...result, checkpointId } : result;
  }

  async restart(cluster: string, options: RestartOptions = {}): Promise<RestartResult | { workflowId: string }> {
    this.validate(() => parseOrThrow(nameSchema, cluster, 'cluster name'));
    await this.refuseIfBusy(cluster, { mustExist: options.store === undefined });
    const input = {
      cluster,
      ...(options.checkpointId ? { checkpointId: options.checkpointId } : {}),
      ...(options.hostMap ? { hostMap: options.hostMap } : {}),
      ...(options.force ? { force: true } : {}),
      ...(options.store ? { store: options.store } : {}),
    };
    return this.run('restartCluster', `vccr-${cluster}-restart-${options.checkpointId ?? 'latest'}-${stamp()}`, [input], options);
  }

  async down(cluster: string, options: WatchOptions & { kill?: boolean } = {}): Promise<ShutdownResult | { workflowId: string }> {
    this.validate(() => parseOrThrow(nameSchema, cluster, 'cluster name'));
    await this.refuseIfBusy(cluster);
    return this.run('shutdownCluster', `vccr-${cluster}-down-${stamp()}`, [{ cluster, mode: options.kill ? 'kill' : 'quit' }], options);
  }

  /** The cluster record plus every VM's live state, asked of its host. */
  async status(cluster: string): Promise<InspectResult> {
    this.validate(() => parseOrThrow(nameSchema, cluster, 'cluster name'));
    return this.run<InspectResult>('inspectCluster', `vccr-${cluster}-status-${stamp()}`, [{ cluster }], {}) as Promise<InspectResult>;
  }

  /** The cluster record only (no host is asked); undefined for an unknown cluster. */
  async clusterState(cluster: string): Promise<ClusterState | undefined> {
    try {
      return await this.client.workflow.getHandle(clusterWorkflowId(cluster)).query(clusterStateQuery);
    } catch (err) {
      const e = toVccrError(err);
      if (e.exitCode === EXIT.notFound) return undefined;
      throw e;
    }
  }

  /** Names of the clusters with a running cluster record in this namespace. */
  async clusters(): Promise<string[]> {
    const names: string[] = [];
    for await (const wf of this.client.workflow.list({ query: `WorkflowType = 'clusterRecord' AND ExecutionStatus = 'Running'` })) {
      names.push(wf.workflowId.replace(/^vccr-cluster-/, ''));
    }
    return names.sort();
  }

  readonly checkpoints = {
    list: async (cluster: string, store?: string) =>
      (await this.known(cluster, store)) &&
      this.run<ListCheckpointsReply>('listCheckpoints', `vccr-${cluster}-list-${stamp()}`, [{ cluster, ...(store ? { store } : {}) }], {}) as Promise<ListCheckpointsReply>,
    show: async (cluster: string, checkpointId: string, store?: string) =>
      (await this.known(cluster, store)) &&
      this.run<{ manifest: Manifest; resume?: ResumeRecord }>('showCheckpoint', `vccr-${cluster}-show-${stamp()}`, [{ cluster, checkpointId, ...(store ? { store } : {}) }], {}) as Promise<{ manifest: Manifest; resume?: ResumeRecord }>,
    verify: async (cluster: string, checkpointId: string, store?: string) =>
      (await this.known(cluster, store)) &&
      this.run<VerifyReport>('verifyCheckpoint', `vccr-${cluster}-verify-${checkpointId}-${stamp()}`, [{ cluster, checkpointId, ...(store ? { store } : {}) }], {}) as Promise<VerifyReport>,
    delete: async (cluster: string, checkpointId: string, store?: string) => {
      this.validate(() => parseOrThrow(checkpointIdSchema, checkpointId, 'checkpoint id'));
      await this.refuseIfBusy(cluster);
      return this.run<DeleteReport & GarbageReport>('deleteCheckpoint', `vccr-${cluster}-delete-${checkpointId}-${stamp()}`, [{ cluster, checkpointId, ...(store ? { store } : {}) }], {}) as Promise<DeleteReport & GarbageReport>;
    },
  };

  /**
   * Fast refusals without starting a workflow: an unknown cluster (unless it may be rebuilt from the store)
   * or a busy one. The workflows check again; their lock is what guarantees one operation at a time.
   */
  private async refuseIfBusy(cluster: string, options: { mustExist?: boolean } = { mustExist: true }): Promise<void> {
    const state = await this.clusterState(cluster);
    if (!state?.spec && options.mustExist) {
      throw new VccrError(`unknown cluster ${cluster}: no cluster record in namespace ${this.settings.namespace} (launch it with \`vccr up\`)`, 'UnknownCluster', EXIT.notFound);
    }
    const lock = state?.lock;
    if (lock) {
      throw new VccrError(
        `cluster ${cluster} is busy: ${lock.operation}${lock.checkpointId ? ` ${lock.checkpointId}` : ''} (workflow ${lock.workflowId}) has been running since ${new Date(lock.since).toISOString()}`,
        'ClusterBusy',
        EXIT.busy,
      );
    }
  }

  /** Validates the names and, without a store path, requires the cluster record to exist. */
  private async known(cluster: string, store?: string): Promise<true> {
    this.validate(() => parseOrThrow(nameSchema, cluster, 'cluster name'));
    if (store === undefined && !(await this.clusterState(cluster))?.spec) {
      throw new VccrError(`unknown cluster ${cluster}: no cluster record in namespace ${this.settings.namespace} (give --store to read its checkpoints anyway)`, 'UnknownCluster', EXIT.notFound);
    }
    return true;
  }

  private validate<T>(check: () => T): T {
    try {
      return check();
    } catch (err) {
      if (err instanceof InvalidInputError) throw new VccrError(err.message, 'InvalidInput', EXIT.usage);
      throw err;
    }
  }

  private async run<R>(workflowType: string, workflowId: string, args: unknown[], watch: WatchOptions): Promise<R | { workflowId: string }> {
    let handle: WorkflowHandle;
    try {
      handle = await this.client.workflow.start(workflowType, {
        taskQueue: this.settings.controllerTaskQueue,
        workflowId,
        args,
        // Operation ids name the cluster and checkpoint: never run one twice.
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        // A workflow task lost with a crashed controller is retried after this (Temporal's default is 10 s).
        workflowTaskTimeout: WORKFLOW_TASK_TIMEOUT,
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        throw new VccrError(`an operation with id ${workflowId} already exists`, 'AlreadyStarted', EXIT.busy);
      }
      throw toVccrError(err);
    }
    if (watch.noWait) return { workflowId };
    let timer: NodeJS.Timeout | undefined;
    let watching = true;
    if (watch.onProgress) {
      const onProgress = watch.onProgress;
      const poll = async () => {
        try {
          const progress = await handle.query(progressQuery);
          if (watching) onProgress(progress);
        } catch {
          // The workflow may not have started its first task yet, or just finished.
        }
        if (watching) timer = setTimeout(() => void poll(), watch.pollMs ?? 250);
      };
      timer = setTimeout(() => void poll(), 100);
    }
    try {
      const result = (await handle.result()) as R;
      watching = false;
      if (watch.onProgress) {
        try {
          watch.onProgress(await handle.query(progressQuery));
        } catch {
          // Closed workflows answer queries too, but not if the worker is gone; progress is advisory.
        }
      }
      return result;
    } catch (err) {
      throw toVccrError(err);
    } finally {
      watching = false;
      if (timer) clearTimeout(timer);
    }
  }
}

function stamp(): string {
  return `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}
