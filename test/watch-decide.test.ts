// The watch's rules (workflows/watch-decide.ts) and where a recovery puts VMs (workflows/recover.ts), as
// pure functions: confirmation, grace, fencing, spares, the per-hour limit and back-off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide } from '../workflows/watch-decide';
import { restartInputFor } from '../workflows/recover';
import { clusterSpecSchema, type ClusterSpec } from '../common/spec';
import { watchSettingsSchema, type Failure } from '../common/protection';
import type { WatchState } from '../common/watch-messages';

const T0 = Date.parse('2026-11-25T12:00:00Z');
const settings = watchSettingsSchema.parse({ graceSeconds: 10, maxRecoveriesPerHour: 2, backoffSeconds: 5 });

function spec(extra: Record<string, unknown> = {}): ClusterSpec {
  return clusterSpecSchema.parse({
    cluster: 'c',
    store: '/srv/store',
    hosts: { a: {}, b: {}, s: {} },
    vms: [
      { name: 'vm0', host: 'a', memoryMiB: 64, boot: { kernel: '/k' } },
      { name: 'vm1', host: 'b', memoryMiB: 64, boot: { kernel: '/k' } },
    ],
    ...extra,
  });
}

function state(failures: Failure[], checks: number, extra: Partial<WatchState> = {}): WatchState {
  return { cluster: 'c', phase: 'suspect', reason: '', since: T0, confirmedDead: [], fencePending: [], retrying: false, countFrom: 0, recoveries: [], settings, suspicion: { since: T0, checks, failures }, ...extra };
}

const exited: Failure = { kind: 'vm-exited', host: 'a', vm: 'vm0', detail: 'its QEMU process exited' };
const hostB: Failure = { kind: 'host-unreachable', host: 'b', detail: 'no worker picked up a check' };
const reachable = new Set(['a', 's']);

test('an exited QEMU is acted on once seen twice, on the same hosts', () => {
  assert.equal(decide(state([exited], 1), spec(), reachable, T0).action, 'wait');
  assert.deepEqual(decide(state([exited], 2), spec(), reachable, T0 + 1000), { action: 'recover', hostMap: {}, deadHosts: [], failures: [exited] });
});

test('an unreachable host gets the grace period, then needs the fencing rule or an operator', () => {
  const inGrace = decide(state([hostB], 3), spec({ fencing: 'unreachable-is-dead', spareHosts: ['s'] }), reachable, T0 + 9000);
  assert.equal(inGrace.action, 'wait');
  const operator = decide(state([hostB], 5), spec({ spareHosts: ['s'] }), reachable, T0 + 11_000);
  assert.equal(operator.action, 'needs-operator');
  assert.match(operator.action === 'needs-operator' ? operator.reason : '', /vccr recover c --host-dead b/);
  const confirmed = decide(state([hostB], 5, { confirmedDead: ['b'] }), spec({ spareHosts: ['s'] }), reachable, T0 + 11_000);
  assert.deepEqual(confirmed, { action: 'recover', hostMap: { b: 's' }, deadHosts: ['b'], failures: [hostB] });
  const rule = decide(state([hostB], 5), spec({ fencing: 'unreachable-is-dead', spareHosts: ['s'] }), reachable, T0 + 11_000);
  assert.equal(rule.action, 'recover');
});

test('no spare host that answers: needs-operator', () => {
  const d = decide(state([hostB], 5), spec({ fencing: 'unreachable-is-dead', spareHosts: ['s'] }), new Set(['a']), T0 + 11_000);
  assert.equal(d.action, 'needs-operator');
  assert.match(d.action === 'needs-operator' ? d.reason : '', /no spare host answers \(spare hosts: s\)/);
});

test('back-off between recoveries, then the per-hour limit, which an operator resets', () => {
  const one = [{ workflowId: 'r1', startedAt: T0 - 20_000, endedAt: T0 - 2000, outcome: 'completed' as const, detail: '' }];
  assert.equal(decide(state([exited], 2, { recoveries: one }), spec(), reachable, T0).action, 'wait'); // 5 s back-off after r1
  assert.equal(decide(state([exited], 2, { recoveries: one }), spec(), reachable, T0 + 3001).action, 'recover');
  const two = [...one, { workflowId: 'r2', startedAt: T0 - 1000, endedAt: T0, outcome: 'failed' as const, detail: '' }];
  const limited = decide(state([exited], 2, { recoveries: two }), spec(), reachable, T0 + 60_000);
  assert.match(limited.action === 'needs-operator' ? limited.reason : '', /2 recoveries within the last hour \(limit 2\)/);
  assert.equal(decide(state([exited], 2, { recoveries: two, countFrom: T0 + 30_000 }), spec(), reachable, T0 + 60_000).action, 'recover');
  assert.equal(decide(state([exited], 2, { recoveries: two }), spec(), reachable, T0 + 3_700_000).action, 'recover', 'an hour later');
});

test('a recovery restores VMs where they ran until now, and a dead host\'s VMs onto its replacement', () => {
  const ck = { checkpointId: 'ck1', committedAt: '', vms: 3, totalBytes: 0, hosts: ['a', 'b'], placement: { vm0: 'a', vm1: 'b', vm2: 'a' } };
  assert.deepEqual(restartInputFor('c', ck, { vm0: 'a', vm1: 'b', vm2: 'a' }, {}, []).hostMap, {});
  assert.deepEqual(restartInputFor('c', ck, { vm0: 'a', vm1: 'b', vm2: 'a' }, { b: 's' }, ['b']), { cluster: 'c', checkpointId: 'ck1', force: true, hostMap: { b: 's' }, unreachable: ['b'] });
  // vm1 was moved to s by an earlier recovery; the checkpoint predates that: it stays on s.
  assert.deepEqual(restartInputFor('c', ck, { vm0: 'a', vm1: 's', vm2: 'a' }, {}, []).hostMap, { b: 's' });
  // ...and when s dies too, to s's replacement.
  assert.deepEqual(restartInputFor('c', ck, { vm0: 'a', vm1: 's', vm2: 'a' }, { s: 'b' }, ['s']).hostMap, {});
});
