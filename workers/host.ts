// A host worker: one per physical host. It polls its host's task queue and runs every QMP, file and
// process activity for the VMs on this host — and only those: it keeps a registry of the VMs it launched
// and refuses to touch anything else. Its QEMU processes are daemonized and outlive it, and so does the
// pause guard it starts; restarted, it finds them again through its registry.
//
//   vccr-host-worker --host a [--state-dir /var/lib/vccr/hosts/a] [--qemu qemu-system-x86_64] ...   (dist/workers/host.js)
import { Worker } from '@temporalio/worker';
import { childLogger } from '../node/logger';
import { absolutePathSchema, nameSchema, taskQueueSchema } from '../common/names';
import { hostTaskQueue } from '../common/ids';
import { TEMPORAL_OPTION_DOCS, temporalFlags, temporalSettings } from '../node/temporal-config';
import { createHostActivities } from '../activities/host';
import { HostRuntime } from '../activities/host/runtime';
import { createHostPreflightActivities } from '../activities/host/preflight';
import { transferProgressSignal } from '../common/messages';
import { checkConfiguredStore, connectClient, connectWorker, installSdkLogging, runUntilSignalled } from './runtime';
import { exitWithUsage, parseWorkerArgs, UsageError, type WorkerArgs, type WorkerProgram } from './flags';
import { ensurePauseGuard } from '../activities/host/pause-guard';

const PROGRAM: WorkerProgram = {
  name: 'vccr-host-worker',
  synopsis: '--host ID [options]',
  description:
    'Runs the QEMU VMs of one host for VCCR: launches, pauses, saves, loads and stops them when a workflow asks,\n' +
    'through QMP. It polls task queue vccr-host-<ID>. The VMs (daemonized QEMU) and the pause guard it starts\n' +
    'outlive the worker: a restarted worker finds them again in its state folder. Logs are JSON lines (pino) on\n' +
    'stderr; level from VCCR_LOG_LEVEL. If VCCR_STORE names the checkpoint store, it is checked at start.',
  options: {
    host: { type: 'string', value: 'ID', text: "this host's id in cluster specs (env VCCR_HOST; required)" },
    'state-dir': { type: 'string', value: 'DIR', text: 'VM records, QMP sockets, console logs (env VCCR_STATE_DIR, default /var/lib/vccr/hosts/<ID>)' },
    qemu: { type: 'string', value: 'PATH', text: 'QEMU binary (env VCCR_QEMU, default qemu-system-x86_64)' },
    ...TEMPORAL_OPTION_DOCS,
    'task-queue': { type: 'string', value: 'Q', text: 'task queue to poll (default vccr-host-<ID>; must match the spec\'s hosts.<ID>.taskQueue)' },
  },
};

interface HostConfig {
  host: string;
  taskQueue: string;
  stateDir: string;
  qemu: string;
}

/** Options and environment, checked before anything starts. */
function hostConfig(values: WorkerArgs): HostConfig {
  const str = (name: string, env: string) => {
    const v = values[name];
    return typeof v === 'string' ? v : process.env[env];
  };
  const hostArg = str('host', 'VCCR_HOST');
  if (hostArg === undefined) throw new UsageError('--host ID (or env VCCR_HOST) is required');
  const host = nameSchema.safeParse(hostArg);
  if (!host.success) throw new UsageError(`--host ${host.error.issues[0]?.message ?? 'is invalid'}`);
  const taskQueue = taskQueueSchema.safeParse(typeof values['task-queue'] === 'string' ? values['task-queue'] : hostTaskQueue(host.data));
  if (!taskQueue.success) throw new UsageError(`--task-queue ${taskQueue.error.issues[0]?.message ?? 'invalid'}`);
  const stateDir = absolutePathSchema.safeParse(str('state-dir', 'VCCR_STATE_DIR') ?? `/var/lib/vccr/hosts/${host.data}`);
  if (!stateDir.success) throw new UsageError(`--state-dir (or VCCR_STATE_DIR) ${stateDir.error.issues[0]?.message ?? 'invalid'}`);
  return { host: host.data, taskQueue: taskQueue.data, stateDir: stateDir.data, qemu: str('qemu', 'VCCR_QEMU') ?? 'qemu-system-x86_64' };
}

async function main(): Promise<void> {
  const values = parseWorkerArgs(PROGRAM);
  const config = hostConfig(values);
  let settings;
  try {
    settings = temporalSettings({ ...temporalFlags(values), taskQueue: undefined });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const log = childLogger('host-worker', { host: config.host, taskQueue: config.taskQueue });
  installSdkLogging('host-worker');
  checkConfiguredStore(log);

  const runtime = await HostRuntime.create({ hostId: config.host, stateDir: config.stateDir, qemuBinary: config.qemu });
  // The backstop that resumes paused VMs if this worker dies mid-checkpoint (it outlives us).
  ensurePauseGuard(config.stateDir);
  const client = await connectClient(settings, PROGRAM.name);
  const connection = await connectWorker(settings, PROGRAM.name);
  const worker = await Worker.create({
    connection,
    namespace: settings.namespace,
    taskQueue: config.taskQueue,
    activities: {
      ...createHostActivities(runtime, async (workflowId, updates) => {
        await client.workflow.getHandle(workflowId).signal(transferProgressSignal, updates);
      }),
      ...createHostPreflightActivities(runtime),
    },
    // A host runs every VM's steps at once: give it room for big clusters.
    maxConcurrentActivityTaskExecutions: 200,
  });
  log.info({ stateDir: config.stateDir, qemu: runtime.qemu.version, vms: runtime.registry.list().length }, 'host worker running');
  await runUntilSignalled(worker, log, async () => {
    await runtime.close();
    await connection.close();
    await client.connection.close();
  });
}

main().catch(exitWithUsage(PROGRAM.name));
