// Everything a host worker holds while it runs: its identity, its VM registry, one QMP session per VM
// (QEMU serves one client per monitor, so every activity on a VM shares it), per-VM serialisation of
// steps, and the pause watchdog.
import { existsSync } from 'node:fs';
import { ApplicationFailure } from '@temporalio/activity';
import { childLogger, type Logger } from '../../node/logger';
import { QmpClient } from '../qmp';
import { isAlive } from '../../node/proc';
import { probeQemuBinary, type QemuBinaryInfo } from './qemu-binary';
import { VmRegistry, type VmRecord } from './registry';
import { PauseWatchdog } from './pause-guard';
import { BackgroundSaves } from './background-saves';

export interface HostRuntimeOptions {
  hostId: string;
  stateDir: string;
  qemuBinary: string;
}

export class HostRuntime {
  readonly log: Logger;
  readonly registry: VmRegistry;
  readonly watchdog: PauseWatchdog;
  /** Stop mode's saves, started by a capture step and joined by finishSaves (background-saves.ts). */
  readonly saves = new BackgroundSaves();
  private readonly sessions = new Map<string, Promise<QmpClient>>();
  private readonly queues = new Map<string, Promise<unknown>>();

  private constructor(
    readonly hostId: string,
    readonly qemu: QemuBinaryInfo,
    stateDir: string,
  ) {
    this.log = childLogger('host', { host: hostId });
    this.registry = new VmRegistry(stateDir);
    this.watchdog = new PauseWatchdog(this);
  }

  static async create(options: HostRuntimeOptions): Promise<HostRuntime> {
    const qemu = await probeQemuBinary(options.qemuBinary);
    const runtime = new HostRuntime(options.hostId, qemu, options.stateDir);
    runtime.watchdog.recover();
    return runtime;
  }

  /** The record of a VM this host launched, or a refusal: a host acts only on its own VMs. */
  requireVm(cluster: string, vm: string): VmRecord {
    const record = this.registry.get(cluster, vm);
    if (!record || record.host !== this.hostId) {
      throw ApplicationFailure.nonRetryable(
        `host ${this.hostId} did not launch VM ${vm} of cluster ${cluster}; refusing to act on it`,
        'NotOurVm',
      );
    }
    return record;
  }

  /** True while the QEMU process recorded for the VM exists. */
  alive(record: VmRecord): boolean {
    return isAlive({ pid: record.pid, startTime: record.startTime });
  }

  /** The shared QMP session of a VM, (re)connected on demand. */
  async qmp(record: VmRecord): Promise<QmpClient> {
    const key = `${record.cluster}/${record.name}`;
    const existing = this.sessions.get(key);
    if (existing) {
      const client = await existing.catch(() => undefined);
      if (client?.connected && client.socketPath === record.qmpSocket) return client;
      this.sessions.delete(key);
    }
    if (!this.alive(record)) {
      throw ApplicationFailure.nonRetryable(`VM ${record.name} (pid ${record.pid}) is not running`, 'VmNotRunning');
    }
    if (!existsSync(record.qmpSocket)) throw new Error(`QMP socket ${record.qmpSocket} of VM ${record.name} is missing`);
    const connecting = QmpClient.connect(record.qmpSocket, {
      retryWindowMs: 5000,
      connectTimeoutMs: 5000,
      name: key,
      logger: this.log,
    });
    this.sessions.set(key, connecting);
    try {
      return await connecting;
    } catch (err) {
      this.sessions.delete(key);
      throw err;
    }
  }

  async dropSession(cluster: string, vm: string): Promise<void> {
    const key = `${cluster}/${vm}`;
    const existing = this.sessions.get(key);
    this.sessions.delete(key);
    const client = await existing?.catch(() => undefined);
    await client?.close();
  }

  /** Runs steps on one VM one at a time (a retried activity must not overlap its earlier attempt). */
  exclusive<T>(cluster: string, vm: string, step: () => Promise<T>): Promise<T> {
    const key = `${cluster}/${vm}`;
    const previous = this.queues.get(key) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(step);
    this.queues.set(key, next);
    const cleanup = () => {
      if (this.queues.get(key) === next) this.queues.delete(key);
    };
    next.then(cleanup, cleanup);
    return next;
  }

  async close(): Promise<void> {
    this.watchdog.stop();
    this.saves.abortAll();
    for (const key of [...this.sessions.keys()]) {
      const [cluster, vm] = key.split('/') as [string, string];
      await this.dropSession(cluster, vm);
    }
  }
}
