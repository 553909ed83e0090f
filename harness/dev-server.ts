// The real Temporal server for tests, the demo and benchmarks: `temporal server start-dev` from the
// binary that scripts/setup.sh found or installed, with a SQLite file so it can be killed and restarted
// with its state intact (the fault suite does exactly that).
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Connection } from '@temporalio/client';
import { janitor } from './janitor';
import { freePort } from './ports';
import { isAlive, terminate, waitFor, type ProcessIdentity } from '../node/proc';
import { SEARCH_ATTRIBUTE_TYPES } from '../common/search-attributes';

export const repoRoot = resolve(__dirname, '..', '..');

/** The Temporal CLI installed by scripts/setup.sh (or $VCCR_TEMPORAL_CLI). */
export function temporalCliPath(): string {
  const configured = process.env.VCCR_TEMPORAL_CLI;
  const path = configured ?? join(repoRoot, '.cache', 'temporal', 'temporal');
  if (!existsSync(path)) {
    throw new Error(`Temporal CLI not found at ${path}: run \`bash scripts/setup.sh\` (or set VCCR_TEMPORAL_CLI)`);
  }
  return realpathSync(path);
}

export interface DevServerOptions {
  /** SQLite file; the server's state survives a restart only with one. */
  dbFile: string;
  /** Where the server's stdout/stderr go. */
  logFile: string;
  namespace?: string;
  port?: number;
  /** Web UI port; omit for a headless server. */
  uiPort?: number;
  /**
   * Run inside this network namespace, reached at `ip` (the multi-host test: workers reach it over veth
   * links, never over loopback). Readiness is then probed with the Temporal CLI inside the namespace.
   */
  netns?: { name: string; ip: string };
}

export class DevServer {
  private proc: ProcessIdentity | undefined;

  private constructor(
    readonly options: Required<Omit<DevServerOptions, 'uiPort' | 'netns'>> & { uiPort: number | undefined; netns: DevServerOptions['netns'] },
  ) {}

  static async start(options: DevServerOptions): Promise<DevServer> {
    const server = new DevServer({
      dbFile: options.dbFile,
      logFile: options.logFile,
      namespace: options.namespace ?? 'default',
      port: options.port ?? (await freePort()),
      uiPort: options.uiPort,
      netns: options.netns,
    });
    await server.launch();
    return server;
  }

  get address(): string {
    return `${this.options.netns?.ip ?? '127.0.0.1'}:${this.options.port}`;
  }

  get uiUrl(): string | undefined {
    return this.options.uiPort === undefined ? undefined : `http://127.0.0.1:${this.options.uiPort}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Starts the server process (again, after `kill`) on the same port and SQLite file. */
  async launch(): Promise<void> {
    if (this.proc && isAlive(this.proc)) return;
    const o = this.options;
    // In its own namespace the server listens on every address there: bound to one, its services would
    // still dial each other on 127.0.0.1 and fail. The namespace holds only the lab's addresses.
    const args = ['server', 'start-dev', '--ip', o.netns ? '0.0.0.0' : '127.0.0.1', '--port', String(o.port), '--db-filename', o.dbFile];
    args.push('--log-level', 'warn', '--log-format', 'json');
    if (o.namespace !== 'default') args.push('--namespace', o.namespace);
    if (o.uiPort === undefined) args.push('--headless');
    else args.push('--ui-port', String(o.uiPort), '--ui-ip', '127.0.0.1', '--ui-disable-news-fetch');
    for (const [name, type] of Object.entries(SEARCH_ATTRIBUTE_TYPES)) args.push('--search-attribute', `${name}=${type}`);
    const log = openSync(o.logFile, 'a');
    // `ip netns exec` joins the namespace and execs the server (same pid).
    const [cmd, ...argv] = o.netns ? ['ip', 'netns', 'exec', o.netns.name, temporalCliPath(), ...args] : [temporalCliPath(), ...args];
    const child = spawn(cmd ?? 'ip', argv, { stdio: ['ignore', log, log], detached: false });
    closeSync(log);
    if (child.pid === undefined) throw new Error('could not start the Temporal dev server');
    child.unref();
    const id = janitor.trackProcess(child.pid, 'temporal server start-dev');
    if (!id) throw new Error(`the Temporal dev server exited at once; see ${o.logFile}`);
    this.proc = id;
    await waitFor(
      `the Temporal dev server on ${this.address} (log: ${o.logFile})`,
      async () => {
        if (!this.proc || !isAlive(this.proc)) throw new Error(`the dev server exited; see ${o.logFile}`);
        if (o.netns) return this.answersInside(o.netns.name) || undefined;
        const connection = await Connection.connect({ address: this.address, connectTimeout: 1000 });
        try {
          await connection.workflowService.describeNamespace({ namespace: o.namespace });
          return true;
        } finally {
          await connection.close();
        }
      },
      60_000,
      200,
    );
  }

  /** The namespace's description, asked with the Temporal CLI inside the server's network namespace. */
  private answersInside(netns: string): boolean {
    const r = spawnSync('ip', ['netns', 'exec', netns, temporalCliPath(), 'operator', 'namespace', 'describe', '--address', this.address, '--namespace', this.options.namespace], {
      stdio: 'ignore',
      timeout: 10_000,
    });
    return r.status === 0;
  }

  /** SIGKILLs the server (the fault suite's "Temporal died"); `launch` brings it back. */
  async kill(): Promise<void> {
    if (!this.proc) return;
    await terminate(this.proc, 'SIGKILL');
    janitor.untrackProcess(this.proc);
    this.proc = undefined;
  }

  async stop(): Promise<void> {
    if (!this.proc) return;
    await terminate(this.proc, 'SIGTERM', 10_000);
    janitor.untrackProcess(this.proc);
    this.proc = undefined;
  }
}
