// The retention policy as a pure function: which checkpoints (or failure records) to keep and which to
// delete, each with its reasons. Semantics as restic's and borg's `--keep-*`: keep-last N keeps the N
// newest; keep-hourly H keeps the newest item of each of the H most recent hours that have an item;
// keep-daily D the same per day. Hours and days are UTC. Items pinned by the caller (the newest verified
// checkpoint, say) are kept whatever the rules say. Used by workflows, so no I/O and no clock.
import type { RetentionPolicy } from './protection';

export interface RetentionItem {
  id: string;
  /** Epoch ms it was committed (or failed). */
  at: number;
}

export interface RetentionDecision extends RetentionItem {
  keep: boolean;
  /** Why it is kept (every rule that keeps it), or why no rule keeps it. */
  reasons: string[];
}

const hourOf = (at: number) => new Date(at).toISOString().slice(0, 13); // 2026-11-25T18
const dayOf = (at: number) => new Date(at).toISOString().slice(0, 10); // 2026-11-25

interface BucketRule {
  name: 'hourly' | 'daily';
  limit: number;
  bucketOf: (at: number) => string;
  unit: string;
}

/** Newest first; ties broken by id so the result never depends on input order. */
function newestFirst(items: RetentionItem[]): RetentionItem[] {
  return [...items].sort((a, b) => b.at - a.at || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}

/**
 * Decides every item, newest first. `pinned` maps ids that must be kept to the reason why.
 */
export function decideRetention(items: RetentionItem[], policy: RetentionPolicy, pinned: Record<string, string> = {}): RetentionDecision[] {
  const sorted = newestFirst(items);
  const keepReasons = new Map<string, string[]>(sorted.map((i) => [i.id, []]));
  const deleteReasons = new Map<string, string[]>(sorted.map((i) => [i.id, []]));
  const add = (map: Map<string, string[]>, id: string, reason: string) => map.get(id)?.push(reason);

  sorted.forEach((item, i) => {
    if (i < policy.keepLast) add(keepReasons, item.id, `one of the ${policy.keepLast} newest`);
    else if (policy.keepLast > 0) add(deleteReasons, item.id, `not one of the ${policy.keepLast} newest`);
  });

  const rules: BucketRule[] = [
    { name: 'hourly', limit: policy.keepHourly, bucketOf: hourOf, unit: 'hour' },
    { name: 'daily', limit: policy.keepDaily, bucketOf: dayOf, unit: 'day' },
  ];
  for (const rule of rules) {
    if (rule.limit <= 0) continue;
    const keptBy = new Map<string, string>(); // bucket → id of its newest item
    for (const item of sorted) {
      const bucket = rule.bucketOf(item.at);
      const owner = keptBy.get(bucket);
      if (owner !== undefined) {
        add(deleteReasons, item.id, `${rule.unit} ${bucket} is kept by the newer ${owner}`);
      } else if (keptBy.size < rule.limit) {
        keptBy.set(bucket, item.id);
        add(keepReasons, item.id, `newest of ${rule.unit} ${bucket} (${rule.name} ${keptBy.size}/${rule.limit})`);
      } else {
        add(deleteReasons, item.id, `${rule.unit} ${bucket} is older than the ${rule.limit} newest ${rule.unit}s with checkpoints`);
      }
    }
  }

  for (const [id, why] of Object.entries(pinned)) add(keepReasons, id, why);

  return sorted.map((item) => {
    const keep = keepReasons.get(item.id) ?? [];
    return keep.length ? { ...item, keep: true, reasons: keep } : { ...item, keep: false, reasons: deleteReasons.get(item.id) ?? [] };
  });
}
