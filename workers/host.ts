// A host worker: one per physical host. It polls its host's task queue and runs every QMP, file and
// process activity for the VMs on this host — and only those: it keeps a registry of the VMs it launched
// and refuses to touch anything else. Its QEMU processes are daemonized and outlive it; restarted, it
// finds them again through its registry.
//
//   node dist/workers/host.js --host a [--state-dir /var/lib/vccr/hosts/a] [--qemu qemu-system-x86_64]
//                             [--task-queue vccr-host-a] [--address host:port] [--namespace ns]
import { parseArgs } from 'node:util';
import { Worker } from '@temporalio/worker';
import { childLogger } from '../common/logger';
import { nameSchema, taskQueueSchema } from '../common/names';
import { temporalSettings } from '../common/temporal-config';
import { createHostActivities } from '../activities/host';
import { HostRuntime } from '../activities/host/runtime';
import { transferProgressSignal } from '../workflows/definitions';
import { connectClient, connectWorker, installSdkLogging, runUntilSignalled } from './runtime';
import { exitWithUsage, temporalFlagOptions, temporalFlags } from './flags';
import { ensurePauseGuard } from '../activities/host/guard';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      ...temporalFlagOptions,
      host: { type: 'string' },
      'state-dir': { type: 'string' },
      qemu: { type: 'string' },
    },
    strict: true,
  });
  const host = nameSchema.safeParse(values.host ?? process.env.VCCR_HOST);
  if (!host.success) throw new Error(`--host (or VCCR_HOST) is required and ${host.error.issues[0]?.message ?? 'invalid'}`);
  const taskQueue = taskQueueSchema.safeParse(values['task-queue'] ?? `vccr-host-${host.data}`);
  if (!taskQueue.success) throw new Error(`--task-queue ${taskQueue.error.issues[0]?.message ?? 'invalid'}`);
  const stateDir = values['state-dir'] ?? process.env.VCCR_STATE_DIR ?? `/var/lib/vccr/hosts/${host.data}`;
  if (!stateDir.startsWith('/')) throw new Error('--state-dir must be an absolute path');
  const settings = temporalSettings({ ...temporalFlags(values), taskQueue: undefined });
  const log = childLogger('host-worker', { host: host.data, taskQueue: taskQueue.data });
  installSdkLogging('host-worker');

  const runtime = await HostRuntime.create({
    hostId: host.data,
    stateDir,
    qemuBinary: values.qemu ?? process.env.VCCR_QEMU ?? 'qemu-system-x86_64',
  });
  // The backstop that resumes paused VMs if this worker dies mid-checkpoint (it outlives us).
  ensurePauseGuard(stateDir);
  const client = await connectClient(settings);
  const connection = await connectWorker(settings);
  const worker = await Worker.create({
    connection,
    namespace: settings.namespace,
    taskQueue: taskQueue.data,
    activities: createHostActivities(runtime, async (workflowId, updates) => {
      await client.workflow.getHandle(workflowId).signal(transferProgressSignal, updates);
    }),
    // A host runs every VM's steps at once: give it room for big clusters.
    maxConcurrentActivityTaskExecutions: 200,
  });
  log.info({ stateDir, qemu: runtime.qemu.version, vms: runtime.registry.list().length }, 'host worker running');
  await runUntilSignalled(worker, log, async () => {
    await runtime.close();
    await connection.close();
    await client.connection.close();
  });
}

main().catch(exitWithUsage);
