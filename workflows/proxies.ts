// Typed activity proxies with the timeouts and retries each protocol step needs. Host activities go to
// the host's own task queue; a short scheduleToStartTimeout is how a dead host worker is noticed (no
// worker polls its queue), and every activity heartbeats (activities/heartbeat.ts) so a worker that dies
// mid-step is noticed in seconds.
import { proxyActivities, proxyLocalActivities, workflowInfo, type ActivityOptions } from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { HostActivities } from '../activities/host';
import type { ControllerActivities } from '../activities/controller';

/** How long a host activity may wait for its worker before the host counts as unreachable. */
export const HOST_PICKUP_TIMEOUT = '10 seconds';

/** Every activity heartbeats twice a second (activities/heartbeat.ts): a dead worker is noticed after this. */
const DEAD_WORKER_AFTER = '5 seconds';

/**
 * The controller worker passes its heartbeats on every second (workers/controller.ts), so a dead controller
 * is noticed sooner; its activities are short bookkeeping or hashing on a worker thread, never blocked I/O.
 */
const DEAD_CONTROLLER_AFTER = '3 seconds';

const quick: ActivityOptions = {
  scheduleToStartTimeout: HOST_PICKUP_TIMEOUT,
  startToCloseTimeout: '30 seconds',
  heartbeatTimeout: DEAD_WORKER_AFTER,
  retry: { initialInterval: '200 milliseconds', backoffCoefficient: 2, maximumInterval: '2 seconds', maximumAttempts: 5 },
};

/** Steps that stream data or boot processes: a long start-to-close, and fewer attempts. */
function long(startToClose: Duration, heartbeat: Duration = DEAD_WORKER_AFTER, attempts = 3): ActivityOptions {
  return {
    scheduleToStartTimeout: HOST_PICKUP_TIMEOUT,
    startToCloseTimeout: startToClose,
    heartbeatTimeout: heartbeat,
    retry: { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '5 seconds', maximumAttempts: attempts },
  };
}

export function hostActivities(taskQueue: string) {
  return {
    quick: proxyActivities<HostActivities>({ ...quick, taskQueue }),
    launch: proxyActivities<HostActivities>({ ...long('5 minutes'), taskQueue }),
    transfer: (startToClose: Duration) => proxyActivities<HostActivities>({ ...long(startToClose), taskQueue }),
  };
}

export function controllerActivities() {
  const taskQueue = workflowInfo().taskQueue;
  return {
    // While a controller activity is lost with its worker the cluster may be paused: heartbeats tell.
    quick: proxyActivities<ControllerActivities>({
      taskQueue,
      startToCloseTimeout: '1 minute',
      heartbeatTimeout: DEAD_CONTROLLER_AFTER,
      retry: { initialInterval: '200 milliseconds', backoffCoefficient: 2, maximumInterval: '5 seconds', maximumAttempts: 10 },
    }),
    // On the critical path (commit is inside the cluster's pause): run in the controller worker itself,
    // without a round trip through a task queue.
    local: proxyLocalActivities<ControllerActivities>({
      startToCloseTimeout: '30 seconds',
      retry: { initialInterval: '200 milliseconds', backoffCoefficient: 2, maximumInterval: '2 seconds', maximumAttempts: 10 },
    }),
    long: proxyActivities<ControllerActivities>({
      taskQueue,
      startToCloseTimeout: '1 hour',
      heartbeatTimeout: DEAD_CONTROLLER_AFTER,
      retry: { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '10 seconds', maximumAttempts: 5 },
    }),
  };
}
