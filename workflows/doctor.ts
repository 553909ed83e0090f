// doctorCluster: the preflight behind `vccr doctor`. Every host checks, through its own worker, what a
// checkpoint and a restart of the spec will ask of it; the controller checks the store; the clocks are
// compared; and a marker written by each participant and looked for by all proves they share one store.
// Read-only for the cluster: it takes no lock and touches no VM. A host whose worker does not answer is
// reported, never waited for.
import { ActivityFailure, ApplicationFailure, TimeoutFailure, proxyActivities, uuid4, workflowInfo } from '@temporalio/workflow';
import type { ActivityOptions } from '@temporalio/common';
import { doctorInputSchema, type DoctorInput } from '../common/workflow-inputs';
import { resolveVm, taskQueueOf, type ClusterSpec, type ResolvedVm } from '../common/spec';
import { hostTaskQueue } from '../common/ids';
import {
  clockCheck,
  fail,
  offsetFromServer,
  reportOk,
  sameStoreChecks,
  type ClockSample,
  type DoctorReport,
  type ParticipantReport,
  type PreflightReply,
} from '../common/doctor';
import type { HostPreflightActivities } from '../activities/host/preflight';
import type { ControllerPreflightActivities } from '../activities/controller/preflight';
import { HOST_PICKUP_TIMEOUT } from './proxies';
import { reasonOf, validateInput } from './validate';

/** One attempt each: a doctor reports what it finds, it does not retry its way around it. */
const once: ActivityOptions = { startToCloseTimeout: '2 minutes', heartbeatTimeout: '5 seconds', retry: { maximumAttempts: 1 } };
const CLOCK_ROUNDS = 3;

type Participant = { id: string; queue: string; kind: 'controller' | 'host' };
type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

const settle = <T>(p: Promise<T>): Promise<Outcome<T>> => p.then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }));

export async function doctorCluster(rawInput: DoctorInput): Promise<DoctorReport> {
  const input = validateInput(doctorInputSchema, rawInput, 'doctorCluster');
  const spec = input.spec;
  const token = uuid4();
  const store = spec?.store ?? input.store;
  const controller: Participant = { id: 'controller', queue: workflowInfo().taskQueue, kind: 'controller' };
  const hosts: Participant[] = [...new Set([...Object.keys(spec?.hosts ?? {}), ...input.hosts])].sort().map((id) => ({
    id,
    queue: spec ? taskQueueOf(spec, id) : hostTaskQueue(id),
    kind: 'host',
  }));
  const needBytes = (spec?.vms ?? []).reduce((sum, vm) => sum + vm.memoryMiB * 2 ** 20, 0);

  const first = await Promise.all([
    settle(controllerActivities(controller.queue).controllerPreflight({ token, ...(store ? { store } : {}), storeNeedBytes: needBytes })),
    ...hosts.map((h) =>
      settle(hostActivities(h.queue).hostPreflight({ token, ...(spec ? { cluster: spec.cluster } : {}), ...(store ? { store } : {}), storeNeedBytes: needBytes, vms: vmsOf(spec, h.id) })),
    ),
  ]);
  const replies = new Map<Participant, Outcome<PreflightReply>>([controller, ...hosts].map((p, i) => [p, first[i] as Outcome<PreflightReply>]));
  const reachable = [...replies].filter(([, r]) => r.ok).map(([p]) => p);
  const offsets = await clockOffsets(reachable);
  const sameStore = store ? await compareStores(store, token, replies) : new Map();

  const participants: ParticipantReport[] = [...replies].map(([p, r]) => {
    const base = { participant: p.id, kind: p.kind, ...(p.kind === 'host' ? { taskQueue: p.queue } : {}) };
    if (!r.ok) return { ...base, checks: [unreachable(p, r.error)] };
    const checks = [...r.value.checks];
    const same = sameStore.get(p.id);
    if (same) checks.push(same);
    const offset = offsets.get(p.id);
    if (p.kind === 'host' && offset !== undefined) checks.push(clockCheck(offset.ms, offset.against));
    return { ...base, checks };
  });
  return { ...(spec ? { cluster: spec.cluster } : {}), participants, ok: reportOk(participants) };
}

function hostActivities(taskQueue: string) {
  // A host worker that does not pick the check up within this is reported as unreachable.
  return proxyActivities<HostPreflightActivities>({ ...once, taskQueue, scheduleToStartTimeout: HOST_PICKUP_TIMEOUT });
}

function controllerActivities(taskQueue: string) {
  // No eager dispatch: the controller's clock samples must travel the same path as the hosts' (through
  // matching), or its smaller delivery delay would show up as a clock offset of every host.
  return proxyActivities<ControllerPreflightActivities>({ ...once, taskQueue, scheduleToStartTimeout: HOST_PICKUP_TIMEOUT, allowEagerDispatch: false });
}

function activitiesOf(p: Participant) {
  return p.kind === 'host' ? hostActivities(p.queue) : controllerActivities(p.queue);
}

function vmsOf(spec: ClusterSpec | undefined, host: string): ResolvedVm[] {
  if (!spec) return [];
  return spec.vms.filter((vm) => vm.host === host).map((vm) => resolveVm(spec, vm));
}

/** Each host's clock against the controller's (or, without the controller, against Temporal's). */
async function clockOffsets(reachable: Participant[]): Promise<Map<string, { ms: number; against: string }>> {
  const samples = new Map<string, ClockSample[]>(reachable.map((p) => [p.id, []]));
  for (let round = 0; round < CLOCK_ROUNDS; round++) {
    const results = await Promise.all(reachable.map(async (p) => ({ p, r: await settle(activitiesOf(p).clockSample()) })));
    for (const { p, r } of results) if (r.ok) samples.get(p.id)?.push(r.value);
  }
  const reference = offsetFromServer(samples.get('controller') ?? []);
  const out = new Map<string, { ms: number; against: string }>();
  for (const [id, s] of samples) {
    const offset = offsetFromServer(s);
    if (id === 'controller' || offset === undefined) continue;
    out.set(id, reference === undefined ? { ms: offset, against: 'Temporal server' } : { ms: offset - reference, against: 'controller' });
  }
  return out;
}

/** Every participant that wrote a marker looks for everyone's; then each removes its own. */
async function compareStores(store: string, token: string, replies: Map<Participant, Outcome<PreflightReply>>) {
  const writers = [...replies].flatMap(([p, r]) => (r.ok && r.value.marker ? [{ p, marker: r.value.marker }] : []));
  const expected = writers.map((w) => w.marker);
  const seen = await Promise.all(writers.map((w) => settle(activitiesOf(w.p).readStoreMarkers({ store, token, expected }))));
  await Promise.all(writers.map((w) => settle(activitiesOf(w.p).removeStoreMarker({ store, token, marker: w.marker }))));
  const views = new Map<string, string[]>();
  writers.forEach((w, i) => {
    const r = seen[i];
    if (r?.ok) views.set(w.p.id, r.value);
  });
  return sameStoreChecks(store, views);
}

/** Why a participant did not answer, from what the failure is (never from its message). */
function unreachable(p: Participant, err: unknown) {
  const who = p.kind === 'host' ? `the worker of host ${p.id}` : 'a controller worker';
  const unit = p.kind === 'host' ? `vccr-host@${p.id}` : 'vccr-controller';
  const fix =
    `make sure ${who} runs (\`systemctl status ${unit}\`, \`journalctl -u ${unit}\`) and polls task queue ${p.queue}, ` +
    'and that it can reach the Temporal server: a worker that cannot reach Temporal looks exactly like one that is not running';
  const timeout = err instanceof ActivityFailure && err.cause instanceof TimeoutFailure ? err.cause.timeoutType : undefined;
  if (timeout === 'SCHEDULE_TO_START') return fail('worker', `no worker picked up the check on task queue ${p.queue} within ${HOST_PICKUP_TIMEOUT}`, fix);
  if (timeout) return fail('worker', `${who} stopped answering during the check (${timeout} timeout)`, fix);
  const cause = err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause.type : undefined;
  return fail('worker', `the check failed on ${who}${cause ? ` (${cause})` : ''}: ${reasonOf(err)}`, 'see the worker\'s log; this is a bug if it persists');
}
