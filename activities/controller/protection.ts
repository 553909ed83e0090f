// Controller activities of continuous protection: asking Temporal about the watch and about who polls a
// host's task queue, and writing each recovery's record to the store.
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { writeFileAtomic } from '../../node/fsutil';
import { watchWorkflowId } from '../../common/ids';
import { storeLayout } from '../../common/store-layout';
import { childLogger } from '../../node/logger';
import { watchStateQuery, type WatchState } from '../../common/watch-messages';

const log = childLogger('protection');

// Values of the API's TaskQueueKind and TaskQueueType enums (the proto package is not a dependency of ours).
const TASK_QUEUE_KIND_NORMAL = 1;
const TASK_QUEUE_TYPE_ACTIVITY = 2;

export interface QueuePollers {
  taskQueue: string;
  /** Workers that polled the queue recently (Temporal forgets a poller a few minutes after its last poll). */
  pollers: Array<{ identity: string; lastAccessTime?: string }>;
}

export function protectionActivities(client: Client) {
  /** The watch's state, or undefined when the cluster has no running watch. */
  async function getWatchState(req: { cluster: string }): Promise<WatchState | undefined> {
    const handle = client.workflow.getHandle(watchWorkflowId(req.cluster));
    try {
      const d = await handle.describe();
      if (d.status.name !== 'RUNNING') return undefined;
      return await handle.query(watchStateQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
  }

  /** Who polls a host's activity queue, and when each last did: shown when a host stops answering. */
  async function hostQueuePollers(req: { taskQueue: string }): Promise<QueuePollers> {
    const reply = await client.workflowService.describeTaskQueue({
      namespace: client.options.namespace,
      taskQueue: { name: req.taskQueue, kind: TASK_QUEUE_KIND_NORMAL },
      taskQueueType: TASK_QUEUE_TYPE_ACTIVITY,
    });
    return {
      taskQueue: req.taskQueue,
      pollers: (reply.pollers ?? []).map((p) => {
        const seconds = Number(p.lastAccessTime?.seconds ?? 0);
        return { identity: p.identity ?? '', ...(seconds ? { lastAccessTime: new Date(seconds * 1000).toISOString() } : {}) };
      }),
    };
  }

  return { getWatchState, hostQueuePollers };
}

/** Writes one recovery's record to <store>/<cluster>/_recoveries/ (idempotent per recovery workflow). */
export async function recordRecovery(req: { store: string; cluster: string; workflowId: string; record: Record<string, unknown> }): Promise<string> {
  const dir = storeLayout.recoveriesDir(req.store, req.cluster);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, `${req.workflowId.replace(/[^A-Za-z0-9._-]/g, '_')}.json`);
  await writeFileAtomic(path, JSON.stringify(req.record, null, 2) + '\n');
  log.info({ cluster: req.cluster, record: path }, 'recovery recorded');
  return path;
}

/** Every recovery record of a cluster, oldest first. */
export async function listRecoveries(req: { store: string; cluster: string }): Promise<unknown[]> {
  const dir = storeLayout.recoveriesDir(req.store, req.cluster);
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).sort();
  const out: unknown[] = [];
  for (const name of names) {
    try {
      out.push(JSON.parse(await readFile(join(dir, name), 'utf8')));
    } catch {
      // A record being written or damaged: skip it, the others still tell the story.
    }
  }
  return out;
}
