// `vccr doctor` from the client's side: what only the client can see about Temporal (the server answers,
// the namespace exists, VCCR's search attributes are registered, a controller worker polls its queue),
// then the doctorCluster workflow for everything the controller and the hosts check themselves — and,
// for a host that did not answer, who last polled its task queue and when.
import type { Client, WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { fail, ok, reportOk, type Check, type DoctorReport, type ParticipantReport } from '../common/doctor';
import { SEARCH_ATTRIBUTE_TYPES } from '../common/search-attributes';
import type { TemporalSettings } from '../node/temporal-config';

const WORKFLOW_QUEUE = temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW;
const ACTIVITY_QUEUE = temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY;

interface Poller {
  identity: string;
  lastAccess: number | undefined;
}

async function pollers(client: Client, namespace: string, queue: string, type: temporal.api.enums.v1.TaskQueueType): Promise<Poller[]> {
  const r = await client.workflowService.describeTaskQueue({ namespace, taskQueue: { name: queue }, taskQueueType: type });
  return (r.pollers ?? []).map((p) => ({
    identity: p.identity ?? '?',
    lastAccess: p.lastAccessTime?.seconds == null ? undefined : Number(p.lastAccessTime.seconds) * 1000 + Math.floor((p.lastAccessTime.nanos ?? 0) / 1e6),
  }));
}

function describePollers(list: Poller[], now: number): string {
  return list.map((p) => `${p.identity}${p.lastAccess === undefined ? '' : `, last poll ${Math.round((now - p.lastAccess) / 1000)} s ago`}`).join('; ');
}

/** The Temporal part of the report; `controllerPolling` says whether the workflow part can run at all. */
export async function temporalChecks(client: Client, settings: TemporalSettings): Promise<{ report: ParticipantReport; controllerPolling: boolean }> {
  const { namespace, address, controllerTaskQueue } = settings;
  const checks: Check[] = [];
  const info = await client.workflowService.getClusterInfo({}).catch(() => undefined);
  checks.push(ok('reachable', `Temporal at ${address}${info?.serverVersion ? `, server ${info.serverVersion}` : ''}`));
  const described = await client.workflowService.describeNamespace({ namespace }).then(
    () => true,
    () => false,
  );
  if (!described) {
    checks.push(fail('namespace', `namespace ${namespace} does not exist`, `create it (\`temporal operator namespace create ${namespace}\`) or use --namespace`));
    return { report: { participant: 'temporal', kind: 'temporal', checks }, controllerPolling: false };
  }
  const registered = await client.connection.operatorService.listSearchAttributes({ namespace });
  const missing = Object.keys(SEARCH_ATTRIBUTE_TYPES).filter((name) => !(name in (registered.customAttributes ?? {})));
  checks.push(
    missing.length
      ? fail(
          'search-attributes',
          `search attributes ${missing.join(', ')} are not registered in namespace ${namespace}`,
          `start a controller worker (it registers them) or \`temporal operator search-attribute create --namespace ${namespace} ${missing.map((m) => `--name ${m} --type Keyword`).join(' ')}\``,
        )
      : ok('search-attributes', `${Object.keys(SEARCH_ATTRIBUTE_TYPES).join(', ')} registered in namespace ${namespace}`),
  );
  const controllers = await pollers(client, namespace, controllerTaskQueue, WORKFLOW_QUEUE);
  checks.push(
    controllers.length
      ? ok('controller', `${controllers.length} controller worker${controllers.length === 1 ? '' : 's'} polling ${controllerTaskQueue} (${describePollers(controllers, Date.now())})`)
      : fail('controller', `no controller worker polls task queue ${controllerTaskQueue}`, 'start one (`systemctl enable --now vccr-controller`) pointed at this Temporal server and namespace'),
  );
  return { report: { participant: 'temporal', kind: 'temporal', checks }, controllerPolling: controllers.length > 0 };
}

/** Adds, to each host whose worker did not answer, who has been polling its task queue (maybe nobody). */
export async function explainSilentHosts(client: Client, settings: TemporalSettings, report: DoctorReport): Promise<DoctorReport> {
  const participants = await Promise.all(
    report.participants.map(async (p) => {
      const silent = p.checks.find((c) => c.name === 'worker' && c.status === 'fail');
      if (p.kind !== 'host' || !p.taskQueue || !silent) return p;
      const seen = await pollers(client, settings.namespace, p.taskQueue, ACTIVITY_QUEUE).catch(() => []);
      const note = seen.length
        ? `; Temporal last heard from ${describePollers(seen, Date.now())} — a worker that lost its connection`
        : `; no worker has polled ${p.taskQueue} recently`;
      return { ...p, checks: p.checks.map((c) => (c === silent ? { ...c, detail: `${c.detail}${note}`, fix: `${c.fix ?? ''} (Temporal at ${settings.address})` } : c)) };
    }),
  );
  return { ...report, participants, ok: reportOk(participants) };
}

/** How long a controller worker may take to pick up the doctor's workflow before we say none is there. */
export const DOCTOR_PICKUP_MS = 15_000;

/**
 * Waits until a controller worker has started the workflow's first task; if none does in time, terminates
 * the workflow and returns the failed `controller` check (a controller listed as a poller may be dead).
 */
export async function controllerSilence(handle: WorkflowHandle, timeoutMs: number): Promise<Check | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // Started, task scheduled, task started: a worker has it.
    const d = await handle.describe();
    if (d.historyLength >= 3 || d.status.name !== 'RUNNING') return undefined;
    if (Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  await handle.terminate('no controller worker picked it up').catch(() => undefined);
  return fail(
    'controller',
    `no controller worker picked up the doctor's workflow within ${timeoutMs / 1000} s (Temporal still lists pollers that stopped a minute ago)`,
    'start a controller worker (`systemctl enable --now vccr-controller`) pointed at this Temporal server and namespace',
  );
}

/** The participant with `check` replacing its check of the same name. */
export function withCheck(p: ParticipantReport, check: Check): ParticipantReport {
  return { ...p, checks: [...p.checks.filter((c) => c.name !== check.name), check] };
}
