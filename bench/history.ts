// Where a workflow's time goes, from its Temporal history: every moment of a window (e.g. the checkpoint's
// downtime) is attributed to what the workflow was waiting for — an activity still queued, an activity
// running on a worker, or a workflow task queued or running on the controller.
import type { Client } from '@temporalio/client';

interface Ts {
  seconds?: unknown;
  nanos?: number | null;
}

function ms(ts: Ts | null | undefined): number {
  if (!ts) return Number.NaN;
  const s = ts.seconds;
  const secs = typeof s === 'number' ? s : Number(String(s ?? 0));
  return secs * 1000 + Math.floor((ts.nanos ?? 0) / 1e6);
}

export interface ActivitySpan {
  type: string;
  taskQueue: string;
  scheduled: number;
  started: number;
  closed: number;
}

export interface WorkflowTaskSpan {
  scheduled: number;
  started: number;
  completed: number;
}

export interface HistorySpans {
  activities: ActivitySpan[];
  workflowTasks: WorkflowTaskSpan[];
  events: number;
}

export async function historySpans(client: Client, workflowId: string): Promise<HistorySpans> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const events = history.events ?? [];
  const activities = new Map<number, ActivitySpan>();
  const tasks = new Map<number, WorkflowTaskSpan>();
  for (const e of events) {
    const id = Number(String(e.eventId ?? 0));
    const t = ms(e.eventTime as Ts);
    if (e.activityTaskScheduledEventAttributes) {
      const a = e.activityTaskScheduledEventAttributes;
      activities.set(id, { type: a.activityType?.name ?? '?', taskQueue: a.taskQueue?.name ?? '?', scheduled: t, started: Number.NaN, closed: Number.NaN });
    } else if (e.activityTaskStartedEventAttributes) {
      const span = activities.get(Number(String(e.activityTaskStartedEventAttributes.scheduledEventId ?? 0)));
      if (span) span.started = t;
    } else {
      const closed =
        e.activityTaskCompletedEventAttributes ??
        e.activityTaskFailedEventAttributes ??
        e.activityTaskTimedOutEventAttributes ??
        e.activityTaskCanceledEventAttributes;
      if (closed && 'scheduledEventId' in closed) {
        const span = activities.get(Number(String(closed.scheduledEventId ?? 0)));
        if (span) span.closed = t;
      }
    }
    if (e.workflowTaskScheduledEventAttributes) tasks.set(id, { scheduled: t, started: Number.NaN, completed: Number.NaN });
    if (e.workflowTaskStartedEventAttributes) {
      const span = tasks.get(Number(String(e.workflowTaskStartedEventAttributes.scheduledEventId ?? 0)));
      if (span) span.started = t;
    }
    const wtClosed = e.workflowTaskCompletedEventAttributes ?? e.workflowTaskFailedEventAttributes ?? e.workflowTaskTimedOutEventAttributes;
    if (wtClosed && 'scheduledEventId' in wtClosed) {
      const span = tasks.get(Number(String(wtClosed.scheduledEventId ?? 0)));
      if (span) span.completed = t;
    }
  }
  return { activities: [...activities.values()], workflowTasks: [...tasks.values()], events: events.length };
}

export const CATEGORY = {
  activityQueue: 'Temporal: activity queued (scheduled → worker picks it up)',
  workflowQueue: 'Temporal: workflow task queued (→ controller picks it up)',
  workflowRun: 'Temporal: workflow task running (controller worker + history write)',
  other: 'other (client, gaps)',
} as const;

/**
 * Attributes every millisecond of [from, to) to one category: while any activity is outstanding, to the one
 * that closes last (the barrier waits for it) — queued, or `activity <type>` once started; otherwise to a
 * workflow task that is queued or running; otherwise to `other`.
 */
export function attribute(spans: HistorySpans, from: number, to: number): Record<string, number> {
  const out: Record<string, number> = {};
  const add = (k: string) => (out[k] = (out[k] ?? 0) + 1);
  const acts = spans.activities.filter((a) => Number.isFinite(a.scheduled) && a.closed > from && a.scheduled < to);
  const wts = spans.workflowTasks.filter((w) => Number.isFinite(w.scheduled) && (w.completed > from || !Number.isFinite(w.completed)) && w.scheduled < to);
  for (let t = Math.floor(from); t < to; t++) {
    let critical: ActivitySpan | undefined;
    for (const a of acts) if (a.scheduled <= t && t < a.closed && (!critical || a.closed > critical.closed)) critical = a;
    if (critical) {
      add(!Number.isFinite(critical.started) || t < critical.started ? CATEGORY.activityQueue : `activity ${critical.type}`);
      continue;
    }
    const w = wts.find((x) => x.scheduled <= t && t < (Number.isFinite(x.completed) ? x.completed : Infinity));
    if (w) add(Number.isFinite(w.started) && t >= w.started ? CATEGORY.workflowRun : CATEGORY.workflowQueue);
    else add(CATEGORY.other);
  }
  return out;
}
