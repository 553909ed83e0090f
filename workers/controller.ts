// The controller worker: runs VCCR's workflows and the controller activities (cluster lock, checkpoint
// store). Any number may run against one Temporal namespace; any of them may die at any moment.
//
//   vccr-controller-worker [--address host:port] [--namespace ns] [--task-queue q]   (dist/workers/controller.js)
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import { childLogger } from '../node/logger';
import { TEMPORAL_OPTION_DOCS, temporalFlags, temporalSettings } from '../node/temporal-config';
import { createControllerActivities } from '../activities/controller';
import { createControllerPreflightActivities } from '../activities/controller/preflight';
import { checkConfiguredStore, connectClient, connectWorker, installSdkLogging, runUntilSignalled } from './runtime';
import { ensureSearchAttributes } from './search-attributes';
import { exitWithUsage, parseWorkerArgs, UsageError, type WorkerProgram } from './flags';

const PROGRAM: WorkerProgram = {
  name: 'vccr-controller-worker',
  synopsis: '[options]',
  description:
    'Runs the VCCR workflows (checkpoint, restart, launch, ...) and the controller activities (cluster lock,\n' +
    'checkpoint store: it writes manifests, so it must see the store at the path the specs name). Run one or\n' +
    'more anywhere that reaches Temporal. Logs are JSON lines (pino) on stderr; level from VCCR_LOG_LEVEL.\n' +
    'If VCCR_STORE names the checkpoint store, it is checked at start.',
  options: { ...TEMPORAL_OPTION_DOCS },
};

async function main(): Promise<void> {
  const values = parseWorkerArgs(PROGRAM);
  let settings;
  try {
    settings = temporalSettings(temporalFlags(values));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const log = childLogger('controller-worker', { taskQueue: settings.controllerTaskQueue });
  installSdkLogging('controller-worker');
  checkConfiguredStore(log);

  const client = await connectClient(settings, PROGRAM.name);
  await ensureSearchAttributes(client, settings.namespace, log);
  const connection = await connectWorker(settings, PROGRAM.name);
  // Prefer the bundle built by `npm run build` (starts in ~1 s instead of bundling at every start).
  const bundle = join(__dirname, '..', 'workflow-bundle.js');
  const worker = await Worker.create({
    connection,
    namespace: settings.namespace,
    taskQueue: settings.controllerTaskQueue,
    ...(existsSync(bundle) ? { workflowBundle: { codePath: bundle } } : { workflowsPath: require.resolve('../workflows') }),
    activities: { ...createControllerActivities(client, settings.controllerTaskQueue), ...createControllerPreflightActivities() },
    // A controller that dies holds its workflows' sticky tasks: hand them to another worker quickly. A live
    // worker always has a poll waiting on its sticky queue, so this only ever fires for a dead one (or, under
    // extreme load, costs a history replay elsewhere — never correctness).
    stickyQueueScheduleToStartTimeout: '1 second',
    // Heartbeats go out every second (not at 80% of the timeout): the short controller heartbeat timeout
    // in workflows/proxies.ts then still leaves two seconds of slack.
    maxHeartbeatThrottleInterval: '1 second',
  });
  log.info({ address: settings.address, namespace: settings.namespace }, 'controller worker running');
  await runUntilSignalled(worker, log, async () => {
    await connection.close();
    await client.connection.close();
  });
}

main().catch(exitWithUsage(PROGRAM.name));
