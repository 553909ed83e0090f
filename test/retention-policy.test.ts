// The retention policy (common/retention.ts) against hand-worked examples and, for random histories,
// against an independent formulation of restic's rules (group by hour/day first, then pick).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideRetention, type RetentionItem } from '../common/retention';
import { retentionPolicySchema, parseDuration, formatDuration, type RetentionPolicy } from '../common/protection';
import { clusterSpecSchema } from '../common/spec';

const at = (iso: string) => Date.parse(iso);
const policy = (p: Partial<RetentionPolicy>): RetentionPolicy => ({ keepLast: 0, keepHourly: 0, keepDaily: 0, ...p });
const kept = (items: RetentionItem[], p: Partial<RetentionPolicy>, pinned: Record<string, string> = {}) =>
  decideRetention(items, policy(p), pinned).filter((d) => d.keep).map((d) => d.id);

const HISTORY: RetentionItem[] = [
  { id: 'a', at: at('2026-11-24T09:10:00Z') },
  { id: 'b', at: at('2026-11-24T23:50:00Z') },
  { id: 'c', at: at('2026-11-25T10:05:00Z') },
  { id: 'd', at: at('2026-11-25T10:40:00Z') },
  { id: 'e', at: at('2026-11-25T11:10:00Z') },
  { id: 'f', at: at('2026-11-25T11:50:00Z') },
  { id: 'g', at: at('2026-11-25T12:30:00Z') },
];

test('keep-last keeps the N newest and says why the others go', () => {
  const decisions = decideRetention(HISTORY, policy({ keepLast: 3 }));
  assert.deepEqual(decisions.filter((d) => d.keep).map((d) => d.id), ['g', 'f', 'e']);
  assert.deepEqual(decisions.find((d) => d.id === 'c')?.reasons, ['not one of the 3 newest']);
  assert.deepEqual(decisions.find((d) => d.id === 'g')?.reasons, ['one of the 3 newest']);
});

test('keep-hourly keeps the newest of each of the H most recent hours that have a checkpoint', () => {
  assert.deepEqual(kept(HISTORY, { keepHourly: 2 }), ['g', 'f']);
  assert.deepEqual(kept(HISTORY, { keepHourly: 4 }), ['g', 'f', 'd', 'b']);
  const e = decideRetention(HISTORY, policy({ keepHourly: 2 })).find((d) => d.id === 'e');
  assert.deepEqual(e?.reasons, ['hour 2026-11-25T11 is kept by the newer f']);
  const c = decideRetention(HISTORY, policy({ keepHourly: 2 })).find((d) => d.id === 'c');
  assert.deepEqual(c?.reasons, ['hour 2026-11-25T10 is older than the 2 newest hours with checkpoints']);
});

test('keep-daily keeps the newest of each of the D most recent days (UTC)', () => {
  assert.deepEqual(kept(HISTORY, { keepDaily: 1 }), ['g']);
  assert.deepEqual(kept(HISTORY, { keepDaily: 7 }), ['g', 'b']);
});

test('rules add up: a checkpoint kept by any rule is kept, with every reason', () => {
  const decisions = decideRetention(HISTORY, policy({ keepLast: 1, keepHourly: 2, keepDaily: 2 }));
  assert.deepEqual(decisions.filter((d) => d.keep).map((d) => d.id), ['g', 'f', 'b']);
  assert.deepEqual(decisions[0]?.reasons, ['one of the 1 newest', 'newest of hour 2026-11-25T12 (hourly 1/2)', 'newest of day 2026-11-25 (daily 1/2)']);
});

test('a pinned checkpoint is kept whatever the rules say', () => {
  const decisions = decideRetention(HISTORY, policy({ keepLast: 2 }), { a: 'newest verified checkpoint' });
  assert.deepEqual(decisions.filter((d) => d.keep).map((d) => d.id), ['g', 'f', 'a']);
  assert.deepEqual(decisions.find((d) => d.id === 'a')?.reasons, ['newest verified checkpoint']);
});

test('nothing to decide, and ties at the same millisecond are broken by id', () => {
  assert.deepEqual(decideRetention([], policy({ keepLast: 3 })), []);
  const same = [{ id: 'x1', at: 5 }, { id: 'x3', at: 5 }, { id: 'x2', at: 5 }];
  assert.deepEqual(kept(same, { keepLast: 1 }), ['x3']);
});

/** restic's rule written differently: group by bucket, order the buckets, take the newest of each of the first n. */
function expectedBucketKeeps(items: RetentionItem[], n: number, bucketOf: (at: number) => string): Set<string> {
  const groups = new Map<string, RetentionItem[]>();
  for (const item of items) groups.set(bucketOf(item.at), [...(groups.get(bucketOf(item.at)) ?? []), item]);
  const buckets = [...groups.keys()].sort().reverse().slice(0, n);
  return new Set(
    buckets.map((b) => {
      const group = groups.get(b) ?? [];
      return group.reduce((best, i) => (i.at > best.at || (i.at === best.at && i.id > best.id) ? i : best)).id;
    }),
  );
}

test('random histories: the decision matches the independent formulation and does not depend on input order', () => {
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let round = 0; round < 300; round++) {
    const items: RetentionItem[] = Array.from({ length: Math.floor(rand() * 40) }, (_, i) => ({
      id: `ck-${String(i).padStart(3, '0')}`,
      at: at('2026-11-20T00:00:00Z') + Math.floor(rand() * 6 * 86_400_000),
    }));
    const p = policy({ keepLast: Math.floor(rand() * 4), keepHourly: Math.floor(rand() * 5), keepDaily: Math.floor(rand() * 4) });
    if (p.keepLast + p.keepHourly + p.keepDaily === 0) p.keepLast = 1;
    const decisions = decideRetention(items, p);
    const byTime = [...items].sort((a, b) => b.at - a.at || (a.id < b.id ? 1 : -1));
    const expected = new Set([
      ...byTime.slice(0, p.keepLast).map((i) => i.id),
      ...expectedBucketKeeps(items, p.keepHourly, (t) => new Date(t).toISOString().slice(0, 13)),
      ...expectedBucketKeeps(items, p.keepDaily, (t) => new Date(t).toISOString().slice(0, 10)),
    ]);
    assert.deepEqual(new Set(decisions.filter((d) => d.keep).map((d) => d.id)), expected, `round ${round}`);
    for (const d of decisions) assert.ok(d.reasons.length > 0, `${d.id} has a reason`);
    if (items.length) assert.equal(decisions[0]?.keep, true, 'the newest is always kept');
    const shuffled = [...items].sort(() => rand() - 0.5);
    assert.deepEqual(decideRetention(shuffled, p), decisions, 'order of the input does not matter');
  }
});

test('policy, durations and the spec\'s protection fields are validated', () => {
  assert.equal(retentionPolicySchema.safeParse({ keepLast: 0 }).success, false);
  assert.equal(retentionPolicySchema.safeParse({ keepLast: -1 }).success, false);
  assert.equal(retentionPolicySchema.safeParse({ keepLast: 1.5 }).success, false);
  assert.deepEqual(retentionPolicySchema.parse({ keepHourly: 24 }), { keepLast: 0, keepHourly: 24, keepDaily: 0 });
  assert.equal(parseDuration('10m'), 600_000);
  assert.equal(parseDuration('3s'), 3000);
  assert.equal(parseDuration('1.5h'), 5_400_000);
  for (const bad of ['10', 'm', '-1s', '0s', '10 minutes', '1e3s']) assert.equal(parseDuration(bad), undefined, bad);
  assert.equal(formatDuration(90_000), '1m30s');
  const spec = {
    cluster: 'c',
    store: '/srv/store',
    hosts: { a: {}, b: {}, c: {} },
    vms: [{ name: 'vm0', host: 'a', memoryMiB: 64, boot: { kernel: '/k' } }],
  };
  const parsed = clusterSpecSchema.parse(spec);
  assert.deepEqual([parsed.spareHosts, parsed.fencing], [[], 'operator']);
  assert.equal(clusterSpecSchema.safeParse({ ...spec, spareHosts: ['c'], fencing: 'unreachable-is-dead' }).success, true);
  const unknown = clusterSpecSchema.safeParse({ ...spec, spareHosts: ['z'] });
  assert.match(unknown.success ? '' : unknown.error.issues[0]?.message ?? '', /unknown host "z"/);
  assert.equal(clusterSpecSchema.safeParse({ ...spec, fencing: 'yolo' }).success, false);
});
