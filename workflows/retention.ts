// Retention and merging, under the cluster lock (so no restart is reading what is deleted or merged, and
// no checkpoint is adding layers): apply the policy (controller), merge the layers under each running VM
// that no kept checkpoint needs (its host, QMP block-stream), merge layers nobody has open and collect
// garbage (controller), and write down what happened and why.
import { log } from '@temporalio/workflow';
import type { RetentionPolicy } from '../common/protection';
import type { RetentionDecision } from '../common/retention';
import { taskQueueOf } from '../common/spec';
import type { CompactedVm } from '../activities/host/compact';
import { acquireCluster, releaseCluster } from './lock';
import { controllerActivities, hostActivities } from './proxies';
import { groupByHost, onEveryHostSettled } from './barriers';
import type { ProgressTracker } from './progress';
import { reasonOf } from './validate';
import type { AcquireReply } from '../common/messages';
import { vmList, withSummary } from './summary';

export interface RetentionOutcome {
  kept: Array<{ id: string; reasons: string[] }>;
  deleted: Array<{ id: string; reasons: string[] }>;
  failedRecordsDeleted: string[];
  /** Layer merges: on running VMs (host) and on files nobody had open (controller). */
  merges: Array<{ where: string; into: string; base: string; dropped: string[] }>;
  removedLayers: string[];
  /** Longest disk chain under a running VM afterwards (layers, top and base included). */
  longestChain: number;
  problems: string[];
  record: string;
}

const summarize = (ds: RetentionDecision[]) => ds.map((d) => ({ id: d.id, reasons: d.reasons }));

export async function retainAndCompact(cluster: string, policy: RetentionPolicy, progress: ProgressTracker): Promise<RetentionOutcome | { skipped: string }> {
  progress.phase('retention');
  let lock: AcquireReply;
  try {
    lock = await acquireCluster(cluster, 'retention');
  } catch (err) {
    // Busy (a restart, say): skip this round; the next one catches up. Recorded in this run's result.
    const reason = `cluster busy: ${reasonOf(err)}`;
    log.info('retention skipped this round', { cluster, reason });
    return { skipped: reason };
  }
  try {
    const outcome = await underLock(cluster, policy, lock, progress);
    await releaseCluster(cluster, {
      outcome: 'completed',
      detail: `retention: kept ${outcome.kept.length}, deleted ${outcome.deleted.length}, ${outcome.merges.length} merges, ${outcome.removedLayers.length} layers removed`,
    });
    return outcome;
  } catch (err) {
    await releaseCluster(cluster, { outcome: 'failed', detail: `retention: ${reasonOf(err)}` });
    throw err;
  }
}

async function underLock(cluster: string, policy: RetentionPolicy, lock: AcquireReply, progress: ProgressTracker): Promise<RetentionOutcome> {
  const controller = controllerActivities();
  const store = lock.spec.store;
  const decided = await withSummary(controller.quick, `apply retention (keep last ${policy.keepLast}, hourly ${policy.keepHourly}, daily ${policy.keepDaily})`).applyRetention({ store, cluster, policy });
  const problems = [...decided.problems];

  progress.phase('merge');
  const onHosts = await mergeOnHosts(cluster, lock, decided.keepLayers);
  problems.push(...onHosts.problems);
  const live = onHosts.vms.flatMap((vm) => vm.disks.map((d) => d.chain));

  progress.phase('collect');
  const inStore = await withSummary(controller.long, 'merge disk layers nobody runs on; collect garbage').compactStore({ store, cluster, keepLayers: decided.keepLayers, live });
  const merges = [
    ...onHosts.vms.flatMap((vm) => vm.disks.flatMap((d) => d.merged.map((m) => ({ where: `${vm.name} on host ${vm.host} (block-stream)`, into: m.into, base: m.base, dropped: m.drops })))),
    ...inStore.merges.filter((m) => m.ok).map((m) => ({ where: 'store (qemu-img rebase)', into: m.into, base: m.base, dropped: m.drops })),
  ];
  problems.push(...inStore.merges.filter((m) => !m.ok).map((m) => `offline merge into ${m.into}: ${m.error ?? 'failed'}`));
  const outcome = {
    kept: summarize(decided.checkpoints.filter((d) => d.keep)),
    deleted: summarize(decided.checkpoints.filter((d) => !d.keep)),
    failedRecordsDeleted: decided.failedRecords.filter((d) => !d.keep).map((d) => d.id),
    merges,
    removedLayers: inStore.removedLayers,
    longestChain: Math.max(0, ...live.map((c) => c.length)),
    problems,
  };
  const record = await withSummary(controller.quick, 'record what retention did').recordRetention({
    store,
    cluster,
    record: { cluster, at: new Date(Date.now()).toISOString(), policy, ...outcome, failedRecords: summarize(decided.failedRecords) },
  });
  return { ...outcome, record };
}

/** Merges the layers under each running VM that no kept checkpoint needs; a host that does not answer keeps its layers. */
async function mergeOnHosts(cluster: string, lock: AcquireReply, keep: string[]): Promise<{ vms: Array<CompactedVm & { host: string }>; problems: string[] }> {
  if (lock.status !== 'running' && lock.status !== 'degraded') return { vms: [], problems: [] };
  const results = await onEveryHostSettled(groupByHost(lock.placement), (host, vms) =>
    withSummary(hostActivities(taskQueueOf(lock.spec, host)).transfer('1 hour'), `merge disk layers of ${vmList(vms)} on host ${host}`).compactDisks({ cluster, store: lock.spec.store, vms, keep }),
  );
  const vms: Array<CompactedVm & { host: string }> = [];
  const problems: string[] = [];
  for (const r of results) {
    if (r.ok) vms.push(...r.value.map((vm) => ({ ...vm, host: r.host })));
    else problems.push(`host ${r.host}: disk layers not merged (${reasonOf(r.error)})`);
  }
  return { vms, problems };
}
