// The VCCR TypeScript client: every operation of the CLI as a typed method.
//
//   const vccr = await VccrClient.connect({ address: 'localhost:7233' });
//   await vccr.up(spec);
//   const ckpt = await vccr.checkpoint('demo', { onProgress: (p) => console.log(p.phase) });
//   await vccr.restart('demo', { checkpointId: ckpt.checkpointId });
//   await vccr.close();
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { randomBytes } from 'node:crypto';
import { parseOrThrow, InvalidInputError } from '../common/errors';
import { absolutePathSchema, checkpointIdSchema, defaultCheckpointId, nameSchema } from '../common/names';
import { checkpointWorkflowId, clusterOfRecord, clusterWorkflowId, doctorWorkflowId, operationWorkflowId } from '../common/ids';
import { reportOk, type DoctorReport } from '../common/doctor';
import { clusterSpecSchema, type ClusterSpec } from '../common/spec';
import { checkpointText, doctorText, inspectText, launchText, restartText, shutdownText, storeText, type ClusterView } from '../common/operation-summary';
import { howToPointAtTemporal, temporalSettings, tlsOption, type TemporalFlags, type TemporalSettings } from '../node/temporal-config';
import type { CheckpointResult } from '../workflows/checkpoint';
import type { RestartResult } from '../workflows/restart';
import type { LaunchResult } from '../workflows/launch';
import type { ShutdownResult } from '../workflows/shutdown';
import type { InspectResult } from '../workflows/inspect';
import type { Manifest } from '../common/manifest';
import { clusterStateQuery, type ClusterState, type OperationProgress } from '../common/messages';
import { EXIT, VccrError, toVccrError } from './errors';
import { Operations, type Started, type WatchOptions } from './operations';
import { DOCTOR_PICKUP_MS, controllerSilence, explainSilentHosts, temporalChecks, withCheck } from './doctor';
import { ProtectionClient } from './protect';

export { EXIT, VccrError } from './errors';
export { WORKFLOW_TASK_TIMEOUT, type WatchOptions } from './operations';
export type { CheckpointResult, RestartResult, LaunchResult, ShutdownResult, InspectResult, OperationProgress, ClusterState, Manifest };

/** A checked Temporal address, namespace and TLS material: see VccrClient.target. */
export interface ConnectTarget {
  settings: TemporalSettings;
  tls: ReturnType<typeof tlsOption>;
}

export interface RestartOptions extends WatchOptions {
  checkpointId?: string;
  hostMap?: Record<string, string>;
  force?: boolean;
  store?: string;
}

export class VccrClient {
  private readonly operations: Operations;
  /** Continuous protection: the checkpoint Schedule and the watch (client/protect.ts). */
  readonly protection: ProtectionClient;

  private constructor(
    readonly client: Client,
    readonly settings: TemporalSettings,
  ) {
    this.operations = new Operations(client, settings.controllerTaskQueue);
    this.protection = new ProtectionClient(client, settings);
  }

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
  async up(specInput: unknown, watch: WatchOptions = {}): Promise<LaunchResult | Started> {
    const spec = this.validate(() => parseOrThrow(clusterSpecSchema, specInput, 'cluster spec'));
    refuseLocked(await this.clusterState(spec.cluster));
    const text = launchText(viewOfSpec(spec), Object.fromEntries(spec.vms.map((v) => [v.name, v])));
    const handle = await this.operations.start('launchCluster', operationWorkflowId(spec.cluster, 'launch', stamp()), [{ spec }], text);
    return this.operations.follow(handle, watch);
  }

  /** `live: true`: the guests pause only to fix the cut (milliseconds); their RAM is written while they run. */
  async checkpoint(cluster: string, options: WatchOptions & { checkpointId?: string; live?: boolean } = {}): Promise<CheckpointResult | (Started & { checkpointId: string })> {
    this.validate(() => parseOrThrow(nameSchema, cluster, 'cluster name'));
    if (options.checkpointId !== undefined) this.validate(() => parseOrThrow(checkpointIdSchema, options.checkpointId, 'checkpoint id'));
    const checkpointId = options.checkpointId ?? defaultCheckpointId(Date.now(), randomBytes(8).toString('hex'));
    const state = await this.refuseIfBusy(cluster);
    const mode: 'stop' | 'live' = options.live ? 'live' : 'stop';
    const text = checkpointText(viewOf(state), checkpointId, mode);
    const input = { cluster, checkpointId, ...(options.live ? { mode } : {}) };
    const handle = await this.operations.start('checkpointCluster', checkpointWorkflowId(cluster, checkpointId), [input], text);
    const result = await this.operations.follow(handle, options);
    return 'workflowId' in result ? { ...result, checkpointId } : result;
  }

  async restart(cluster: string, options: RestartOptions = {}): Promise<RestartResult | Started> {
    this.validate(() => parseOrThrow(nameSchema, cluster, 'cluster name'));
    // With a store, a cluster whose record is gone is rebuilt from the checkpoint's manifest.
    const state = options.store === undefined ? await this.refuseIfBusy(cluster) : await this.clusterState(cluster);
    refuseLocked(state);
    const input = {
      cluster,
      ...(options.checkpointId ? { checkpointId: options.checkpointId } : {}),
      ...(options.hostMap ? { hostMap: options.hostMap } : {}),
      ...(options.force ? { force: true } : {}),
      ...(options.store ? { store: options.store } : {}),
    };
    const text = restartText(state?.spec ? viewOf({ ...state, spec: state.spec }) : undefined, cluster, {
      hostMap: options.hostMap ?? {},
      force: options.force === true,
      ...(options.checkpointId ? { checkpointId: options.checkpointId } : {}),
      ...(options.store ? { store: options.store } : {}),
    });
    const workflowId = operationWorkflowId(cluster, 'restart', options.checkpointId ?? 'latest', stamp());
    return this.operations.follow(await this.operations.start('restartCluster', workflowId, [input], text), options);
  }

  async down(cluster: string, options: WatchOptions & { kill?: boolean } = {}): Promise<ShutdownResult | Started> {
    this.validate(() => parseOrThrow(nameSchema, cluster, 'cluster name'));
    const state = await this.refuseIfBusy(cluster);
    const mode = options.kill ? 'kill' : 'quit';
    const handle = await this.operations.start('shutdownCluster', operationWorkflowId(cluster, 'down', stamp()), [{ cluster, mode }], shutdownText(viewOf(state), mode));
    return this.operations.follow(handle, options);
  }

  /** The cluster record plus every VM's live state, asked of its host. */
  async status(cluster: string): Promise<InspectResult> {
    this.validate(() => parseOrThrow(nameSchema, cluster, 'cluster name'));
    const state = await this.requireRecord(cluster, '(launch it with `vccr up`)');
    return this.operations.execute('inspectCluster', operationWorkflowId(cluster, 'status', stamp()), [{ cluster }], inspectText(viewOf(state)));
  }

  /**
   * Preflight of a spec (every host it names) or of hosts by id: see client/doctor.ts and workflows/doctor.ts.
   * Never throws for what it finds; the report says, per host, what fails and how to fix it.
   */
  async doctor(options: { spec?: unknown; hosts?: string[]; store?: string } = {}): Promise<DoctorReport> {
    const spec = options.spec === undefined ? undefined : this.validate(() => parseOrThrow(clusterSpecSchema, options.spec, 'cluster spec'));
    const hosts = (options.hosts ?? []).map((h) => this.validate(() => parseOrThrow(nameSchema, h, 'host name')));
    const store = options.store === undefined ? undefined : this.validate(() => parseOrThrow(absolutePathSchema, options.store, 'store'));
    const temporal = await temporalChecks(this.client, this.settings);
    if (!temporal.controllerPolling) return { ...(spec ? { cluster: spec.cluster } : {}), participants: [temporal.report], ok: false };
    const allHosts = [...new Set([...Object.keys(spec?.hosts ?? {}), ...hosts])].sort();
    const text = doctorText(spec ? viewOfSpec(spec) : undefined, allHosts, spec?.store ?? store);
    const input = { ...(spec ? { spec } : {}), hosts, ...(store ? { store } : {}) };
    const handle = await this.operations.start('doctorCluster', doctorWorkflowId(spec?.cluster, stamp()), [input], text);
    // Temporal lists a controller that died a minute ago as a poller still: see whether one takes the task.
    const silence = await controllerSilence(handle, DOCTOR_PICKUP_MS);
    if (silence) return { ...(spec ? { cluster: spec.cluster } : {}), participants: [withCheck(temporal.report, silence)], ok: false };
    const found = await handle.result().catch((err: unknown) => Promise.reject(toVccrError(err)));
    const participants = [temporal.report, ...found.participants];
    return explainSilentHosts(this.client, this.settings, { ...found, participants, ok: reportOk(participants) });
  }

  /** The cluster record only (no host is asked); undefined for an unknown cluster. */
  async clusterState(cluster: string): Promise<ClusterState | undefined> {
    try {
      return await this.client.workflow.getHandle(clusterWorkflowId(cluster)).query(clusterStateQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
  }

  /** Names of the clusters with a running cluster record in this namespace. */
  async clusters(): Promise<string[]> {
    const names: string[] = [];
    for await (const wf of this.client.workflow.list({ query: `WorkflowType = 'clusterRecord' AND ExecutionStatus = 'Running'` })) {
      const name = clusterOfRecord(wf.workflowId);
      if (name) names.push(name);
    }
    return names.sort();
  }

  readonly checkpoints = {
    list: async (cluster: string, store?: string) => {
      await this.known(cluster, store);
      const input = { cluster, ...(store ? { store } : {}) };
      return this.operations.execute('listCheckpoints', operationWorkflowId(cluster, 'list', stamp()), [input], storeText('list', cluster, store));
    },
    show: async (cluster: string, checkpointId: string, store?: string) => {
      await this.known(cluster, store);
      const input = { cluster, checkpointId, ...(store ? { store } : {}) };
      return this.operations.execute('showCheckpoint', operationWorkflowId(cluster, 'show', stamp()), [input], storeText('show', cluster, store, checkpointId));
    },
    verify: async (cluster: string, checkpointId: string, store?: string) => {
      await this.known(cluster, store);
      const input = { cluster, checkpointId, ...(store ? { store } : {}) };
      const workflowId = operationWorkflowId(cluster, 'verify', checkpointId, stamp());
      return this.operations.execute('verifyCheckpoint', workflowId, [input], storeText('verify', cluster, store, checkpointId));
    },
    delete: async (cluster: string, checkpointId: string, store?: string) => {
      this.validate(() => parseOrThrow(checkpointIdSchema, checkpointId, 'checkpoint id'));
      await this.refuseIfBusy(cluster);
      const input = { cluster, checkpointId, ...(store ? { store } : {}) };
      const workflowId = operationWorkflowId(cluster, 'delete', checkpointId, stamp());
      return this.operations.execute('deleteCheckpoint', workflowId, [input], storeText('delete', cluster, store, checkpointId));
    },
  };

  /**
   * Fast refusals without starting a workflow: an unknown or a busy cluster. The workflows check again;
   * their lock is what guarantees one operation at a time.
   */
  private async refuseIfBusy(cluster: string): Promise<RecordedCluster> {
    const state = await this.requireRecord(cluster, '(launch it with `vccr up`)');
    refuseLocked(state);
    return state;
  }

  /** The cluster record with its spec, or an UnknownCluster refusal. */
  private async requireRecord(cluster: string, hint: string): Promise<RecordedCluster> {
    const state = await this.clusterState(cluster);
    if (!state?.spec) throw new VccrError(`unknown cluster ${cluster}: no cluster record in namespace ${this.settings.namespace} ${hint}`, 'UnknownCluster', EXIT.notFound);
    return { ...state, spec: state.spec };
  }

  /** Validates the names and, without a store path, requires the cluster record to exist. */
  private async known(cluster: string, store?: string): Promise<void> {
    this.validate(() => parseOrThrow(nameSchema, cluster, 'cluster name'));
    if (store === undefined) await this.requireRecord(cluster, '(give --store to read its checkpoints anyway)');
  }

  private validate<T>(check: () => T): T {
    try {
      return check();
    } catch (err) {
      if (err instanceof InvalidInputError) throw new VccrError(err.message, 'InvalidInput', EXIT.usage);
      throw err;
    }
  }
}

type RecordedCluster = ClusterState & { spec: ClusterSpec };

function refuseLocked(state: ClusterState | undefined): void {
  const lock = state?.lock;
  if (!state || !lock) return;
  throw new VccrError(
    `cluster ${state.cluster} is busy: ${lock.operation}${lock.checkpointId ? ` ${lock.checkpointId}` : ''} (workflow ${lock.workflowId}) has been running since ${new Date(lock.since).toISOString()}`,
    'ClusterBusy',
    EXIT.busy,
  );
}

function viewOf(state: RecordedCluster): ClusterView {
  return { cluster: state.cluster, store: state.spec.store, placement: state.placement };
}

function viewOfSpec(spec: ClusterSpec): ClusterView {
  return { cluster: spec.cluster, store: spec.store, placement: Object.fromEntries(spec.vms.map((v) => [v.name, v.host])) };
}

function stamp(): string {
  return `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}
