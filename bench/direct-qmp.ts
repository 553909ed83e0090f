// The benchmark baseline: what a careful operator would write by hand to checkpoint and restart the same
// VMs without Temporal, VCCR's workflows or its host workers. One process talks QMP to every VM directly.
//
//   checkpoint: connect to every VM's QMP (its *guard* monitor: the host worker holds the main one), set the
//               migration parameters, `stop` all in parallel, migrate each to a file (QEMU 7.2 has no file:
//               URI and exec: runs a shell, so QEMU streams to a unix socket we listen on and write to the
//               file, hashing on the way, then fsync), write one manifest atomically, `cont` all in parallel.
//   restart:    check every file's sha256, launch each QEMU with the argv it was started with (new
//               socket/pidfile paths, plus `-incoming defer -S`), `migrate-incoming` from its file, wait
//               until all are loaded, `cont` all in parallel.
//
// It reuses two small pieces of the product on purpose: the QMP client and the unix-socket <-> file
// streaming (StateReceiver / sendState), so that the difference measured against the workflows is the
// orchestration, not the write path. The write path itself is compared with `dd` by bench/run.ts.
//
//   node dist/bench/direct-qmp.js checkpoint --cluster C --state-dir DIR [--state-dir DIR ...] --out DIR
//   node dist/bench/direct-qmp.js restart --manifest DIR/manifest.json --run-dir DIR
// Each prints its result as JSON. Diskless VMs only (a disk would need a fresh overlay per restart).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { MIGRATION_FINAL_STATUSES, QmpClient, type QmpEvent } from '../activities/qmp';
import { StateReceiver, sendState } from '../activities/host/transfer';
import { writeFileAtomic } from '../node/fsutil';
import { spread } from '../common/stats';

/** What the script needs to know about a running VM (read from the host worker's vm.json). */
export interface DirectVm {
  name: string;
  host: string;
  guardSocket: string;
  qemuBinary: string;
  argv: string[];
  netns?: string;
}

export interface DirectVmTimes {
  name: string;
  host: string;
  pausedAt: number;
  saveStartedAt: number;
  savedAt: number;
  resumedAt: number;
  bytes: number;
}

export interface DirectCheckpointResult {
  manifest: string;
  downtimeMs: number;
  pauseSkewMs: number;
  resumeSkewMs: number;
  totalBytes: number;
  /** Epoch ms: start/end of each step, as this script saw them. */
  phases: Record<'connect' | 'prepare' | 'pause' | 'save' | 'commit' | 'resume', { start: number; end: number }>;
  vms: DirectVmTimes[];
}

export interface DirectManifest {
  format: 'direct-qmp-checkpoint';
  cluster: string;
  createdAt: string;
  totalBytes: number;
  vms: Array<DirectVm & { file: string; size: number; sha256: string; pausedAt: number; saveStartedAt: number; savedAt: number }>;
}

export interface DirectRestartResult {
  /** Script start (before the checksum pass) to the last VM resumed. */
  restartMs: number;
  /** Start of the launches to the last VM resumed (what the workflow reports as restoreMs). */
  restoreMs: number;
  resumeSkewMs: number;
  phases: Record<'verify' | 'launch' | 'load' | 'resume', { start: number; end: number }>;
  vms: Array<{ name: string; pid: number; qmpSocket: string; launchedAt: number; loadedAt: number; resumedAt: number }>;
}

const UNLIMITED_BANDWIDTH = 2 ** 40;
/** `stop` or `cont` on every VM at once; each VM's time when QEMU answered. */
function onEvery(qmps: QmpClient[], command: 'stop' | 'cont'): Promise<number[]> {
  return Promise.all(
    qmps.map(async (qmp) => {
      await qmp.command(command);
      return Date.now();
    }),
  );
}

const MIGRATION_DONE = (e: QmpEvent<'MIGRATION'>) => MIGRATION_FINAL_STATUSES.includes(e.data.status);
const statusOf = (e: QmpEvent<'MIGRATION'>) => e.data.status;

/** Every VM a set of host workers recorded for `cluster` (<stateDir>/<cluster>/<vm>/vm.json). */
export function readVmRecords(stateDirs: string[], cluster: string): DirectVm[] {
  const vms: DirectVm[] = [];
  for (const dir of stateDirs) {
    const clusterDir = join(dir, cluster);
    if (!existsSync(clusterDir)) continue;
    for (const name of readdirSync(clusterDir).sort()) {
      const path = join(clusterDir, name, 'vm.json');
      if (!existsSync(path)) continue;
      const r = JSON.parse(readFileSync(path, 'utf8')) as {
        name: string;
        host: string;
        guardSocket: string;
        qemuBinary: string;
        argv: string[];
        config: { netns?: string };
      };
      vms.push({ name: r.name, host: r.host, guardSocket: r.guardSocket, qemuBinary: r.qemuBinary, argv: r.argv, ...(r.config.netns ? { netns: r.config.netns } : {}) });
    }
  }
  return vms;
}

/** Checkpoints `vms` into `outDir` (created; must be on the storage you want to measure). */
export async function directCheckpoint(vms: DirectVm[], outDir: string, cluster = 'direct'): Promise<DirectCheckpointResult> {
  mkdirSync(outDir, { recursive: true, mode: 0o700 });
  const phase = () => ({ start: Date.now(), end: 0 });
  const phases = {} as DirectCheckpointResult['phases'];

  phases.connect = phase();
  const qmps = await Promise.all(vms.map((vm) => QmpClient.connect(vm.guardSocket, { retryWindowMs: 2000, name: vm.name })));
  phases.connect.end = Date.now();
  try {
    // Before the pause, like any careful script: events on, no bandwidth cap, VM in a state that can be saved.
    phases.prepare = phase();
    await Promise.all(
      qmps.map(async (qmp, i) => {
        const { status } = await qmp.command('query-status');
        if (status !== 'running' && status !== 'paused') throw new Error(`VM ${vms[i]?.name} is ${status}`);
        await qmp.command('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
        await qmp.command('migrate-set-parameters', { 'max-bandwidth': UNLIMITED_BANDWIDTH });
      }),
    );
    phases.prepare.end = Date.now();

    phases.pause = phase();
    const pausedAt = await onEvery(qmps, 'stop');
    phases.pause.end = Date.now();

    phases.save = phase();
    const saved = await Promise.all(
      qmps.map(async (qmp, i) => {
        const vm = vms[i] as DirectVm;
        const file = join(outDir, `${vm.name}.state`);
        const socket = join(outDir, `${vm.name}.sock`);
        const receiver = new StateReceiver(socket, file);
        await receiver.start();
        const saveStartedAt = Date.now();
        const finished = qmp.waitForEvent('MIGRATION', MIGRATION_DONE, 3600_000);
        await qmp.command('migrate', { uri: `unix:${socket}` });
        const [transfer, event] = await Promise.all([receiver.done, finished]);
        if (statusOf(event) !== 'completed') throw new Error(`migration of ${vm.name} ended ${statusOf(event)}`);
        return { ...transfer, file, saveStartedAt, savedAt: Date.now() };
      }),
    );
    phases.save.end = Date.now();

    phases.commit = phase();
    const manifest: DirectManifest = {
      format: 'direct-qmp-checkpoint',
      cluster,
      createdAt: new Date().toISOString(),
      totalBytes: saved.reduce((sum, s) => sum + s.size, 0),
      vms: vms.map((vm, i) => {
        const s = saved[i] as (typeof saved)[number];
        return { ...vm, file: s.file, size: s.size, sha256: s.sha256, pausedAt: pausedAt[i] as number, saveStartedAt: s.saveStartedAt, savedAt: s.savedAt };
      }),
    };
    const manifestPath = join(outDir, 'manifest.json');
    await writeFileAtomic(manifestPath, JSON.stringify(manifest, null, 1));
    phases.commit.end = Date.now();

    phases.resume = phase();
    const resumedAt = await onEvery(qmps, 'cont');
    phases.resume.end = Date.now();

    return {
      manifest: manifestPath,
      downtimeMs: Math.max(...resumedAt) - Math.min(...pausedAt),
      pauseSkewMs: spread(pausedAt),
      resumeSkewMs: spread(resumedAt),
      totalBytes: manifest.totalBytes,
      phases,
      vms: manifest.vms.map((v, i) => ({
        name: v.name,
        host: v.host,
        pausedAt: v.pausedAt,
        saveStartedAt: v.saveStartedAt,
        savedAt: v.savedAt,
        resumedAt: resumedAt[i] as number,
        bytes: v.size,
      })),
    };
  } catch (err) {
    // Never leave the cluster paused.
    await Promise.allSettled(qmps.map((qmp) => qmp.command('cont')));
    throw err;
  } finally {
    await Promise.allSettled(qmps.map((qmp) => qmp.close()));
  }
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * The recorded argv with this run's own pidfile, monitor sockets and console file (in `dir`), any earlier
 * `-incoming defer -S` removed and a fresh one added. Returns the path of the first QMP monitor's socket.
 */
export function relaunchArgv(argv: string[], dir: string): { argv: string[]; qmpSocket: string; pidFile: string } {
  const out: string[] = [];
  const paths = new Map<string, string>();
  const pidFile = join(dir, 'qemu.pid');
  let qmpChardev: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const next = argv[i + 1] ?? '';
    if (a === '-incoming') {
      i++;
      continue;
    }
    if (a === '-S') continue;
    if (a === '-drive') throw new Error('the direct restart handles diskless VMs only');
    if (a === '-pidfile') {
      out.push(a, pidFile);
      i++;
      continue;
    }
    if (a === '-chardev') {
      const opts = next.split(',');
      const id = opts.find((o) => o.startsWith('id='))?.slice(3) ?? `c${i}`;
      const kind = opts[0] === 'socket' ? 'sock' : 'log';
      const path = join(dir, `${id}.${kind}`);
      paths.set(id, path);
      out.push(a, opts.map((o) => (o.startsWith('path=') ? `path=${path}` : o)).join(','));
      i++;
      continue;
    }
    if (a === '-mon' && qmpChardev === undefined && next.includes('mode=control')) {
      qmpChardev = next.split(',').find((o) => o.startsWith('chardev='))?.slice(8);
    }
    out.push(a);
  }
  const qmpSocket = qmpChardev ? paths.get(qmpChardev) : undefined;
  if (!qmpSocket) throw new Error('the recorded argv has no QMP monitor on a unix socket');
  out.push('-incoming', 'defer', '-S');
  return { argv: out, qmpSocket, pidFile };
}

/** Runs a -daemonize'd QEMU and waits for the parent to exit (it does once the VM is set up). */
function launchDaemonized(qemu: string, argv: string[], netns?: string): Promise<void> {
  const [cmd, args] = netns ? ['nsenter', [`--net=/run/netns/${netns}`, '--', qemu, ...argv]] : [qemu, argv];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`QEMU exited ${code}: ${stderr.trim()}`))));
  });
}

/**
 * Restarts the VMs of a direct checkpoint. Their old processes must be gone already. `onLaunched` gets each
 * QEMU's pid as soon as it exists (so the caller can clean up even if a later step fails).
 */
export async function directRestart(manifestPath: string, runDir: string, onLaunched: (pid: number) => void = () => undefined): Promise<DirectRestartResult> {
  const t0 = Date.now();
  const phase = () => ({ start: Date.now(), end: 0 });
  const phases = {} as DirectRestartResult['phases'];
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as DirectManifest;

  // Nothing is touched before every file is known to be intact.
  phases.verify = phase();
  await Promise.all(
    manifest.vms.map(async (vm) => {
      if ((await sha256Of(vm.file)) !== vm.sha256) throw new Error(`${vm.file} does not match its checksum`);
    }),
  );
  phases.verify.end = Date.now();

  phases.launch = phase();
  const launched = await Promise.all(
    manifest.vms.map(async (vm) => {
      const dir = join(runDir, vm.name);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const { argv, qmpSocket, pidFile } = relaunchArgv(vm.argv, dir);
      await launchDaemonized(vm.qemuBinary, argv, vm.netns);
      const pid = Number.parseInt(readFileSync(pidFile, 'utf8').trim(), 10);
      onLaunched(pid);
      const qmp = await QmpClient.connect(qmpSocket, { retryWindowMs: 5000, name: vm.name });
      return { vm, dir, pid, qmpSocket, qmp, launchedAt: Date.now() };
    }),
  );
  phases.launch.end = Date.now();

  try {
    phases.load = phase();
    const loadedAt = await Promise.all(
      launched.map(async ({ vm, dir, qmp }) => {
        const socket = join(dir, 'load.sock');
        await qmp.command('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
        const done = qmp.waitForEvent('MIGRATION', (e) => ['completed', 'failed'].includes(statusOf(e)), 3600_000);
        await qmp.command('migrate-incoming', { uri: `unix:${socket}` });
        const sent = await sendState(socket, vm.file);
        if (sent.sha256 !== vm.sha256) throw new Error(`${vm.file} changed while it was loaded`);
        const event = await done;
        if (statusOf(event) !== 'completed') throw new Error(`loading ${vm.name} ended ${statusOf(event)}`);
        return Date.now();
      }),
    );
    phases.load.end = Date.now();

    phases.resume = phase();
    const resumedAt = await onEvery(
      launched.map((l) => l.qmp),
      'cont',
    );
    phases.resume.end = Date.now();
    const last = Math.max(...resumedAt);
    return {
      restartMs: last - t0,
      restoreMs: last - phases.launch.start,
      resumeSkewMs: spread(resumedAt),
      phases,
      vms: launched.map((l, i) => ({
        name: l.vm.name,
        pid: l.pid,
        qmpSocket: l.qmpSocket,
        launchedAt: l.launchedAt,
        loadedAt: loadedAt[i] as number,
        resumedAt: resumedAt[i] as number,
      })),
    };
  } finally {
    await Promise.allSettled(launched.map((l) => l.qmp.close()));
  }
}

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      cluster: { type: 'string' },
      'state-dir': { type: 'string', multiple: true },
      out: { type: 'string' },
      manifest: { type: 'string' },
      'run-dir': { type: 'string' },
    },
  });
  const [command] = positionals;
  if (command === 'checkpoint' && values.cluster && values['state-dir']?.length && values.out) {
    const vms = readVmRecords(values['state-dir'], values.cluster);
    if (!vms.length) throw new Error(`no VMs of cluster ${values.cluster} recorded under ${values['state-dir'].join(', ')}`);
    process.stdout.write(`${JSON.stringify(await directCheckpoint(vms, values.out, values.cluster), null, 1)}\n`);
  } else if (command === 'restart' && values.manifest && values['run-dir']) {
    process.stdout.write(`${JSON.stringify(await directRestart(values.manifest, values['run-dir']), null, 1)}\n`);
  } else {
    process.stderr.write(
      'usage: direct-qmp checkpoint --cluster C --state-dir DIR [--state-dir DIR ...] --out DIR\n' +
        '       direct-qmp restart --manifest FILE --run-dir DIR\n',
    );
    process.exit(2);
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`direct-qmp: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
