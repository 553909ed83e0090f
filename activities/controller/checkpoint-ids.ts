// A checkpoint id names one checkpoint run, once. Reusing an id after a failed, deleted or interrupted
// checkpoint would let the new run take the old run's leftovers — a top disk layer, a state file — for
// its own retried work and commit old memory or an old disk with new memory. So a run records itself in
// its folder (run.json), hosts key retried work on the run id (leases, layer names, state-file sidecars),
// and an id that appears in _failed/, in any disk chain or layer name, or in an unfinished folder of
// another run is refused before anything is touched.
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { failureRecordSchema } from '../../common/manifest';
import { checkpointIdOfLayer, storeLayout } from '../../common/store-layout';

const RUN_RECORD = 'run.json';
const runRecordSchema = z.object({ workflowId: z.string(), runId: z.string() });

interface IdUse {
  store: string;
  cluster: string;
  checkpointId: string;
  workflowId: string;
  runId: string;
}

async function readJsonQuietly(path: string): Promise<unknown> {
  return readFile(path, 'utf8').then((t) => JSON.parse(t) as unknown).catch(() => undefined);
}

/** Which run started the (uncommitted) folder of a checkpoint; undefined if unknown. */
async function folderRun(dir: string): Promise<z.infer<typeof runRecordSchema> | undefined> {
  const parsed = runRecordSchema.safeParse(await readJsonQuietly(join(dir, RUN_RECORD)));
  return parsed.success ? parsed.data : undefined;
}

/** A disk layer (file or chain entry) made by a checkpoint of this id, if any. */
async function layerOfId(store: string, cluster: string, checkpointId: string): Promise<string | undefined> {
  const disksDir = storeLayout.disksDir(store, cluster);
  const list = (dir: string) => readdir(dir).catch(() => [] as string[]);
  for (const vm of await list(disksDir)) {
    for (const disk of await list(join(disksDir, vm))) {
      const dir = join(disksDir, vm, disk);
      const chain = (await readJsonQuietly(join(dir, 'chain.json'))) as { active?: unknown; backing?: unknown } | undefined;
      const named = [chain?.active, ...(Array.isArray(chain?.backing) ? chain.backing : [])].filter((l): l is string => typeof l === 'string');
      for (const path of [...(await list(dir)).map((f) => join(dir, f)), ...named]) {
        if (checkpointIdOfLayer(path.slice(path.lastIndexOf('/') + 1)) === checkpointId) return path;
      }
    }
  }
  return undefined;
}

/** Why this run may not use its checkpoint id (it was used before), or undefined if it may. */
export async function earlierUse(req: IdUse): Promise<string | undefined> {
  const failed = storeLayout.failedRecord(req.store, req.cluster, req.checkpointId);
  if (existsSync(failed)) {
    const record = failureRecordSchema.safeParse(await readJsonQuietly(failed));
    return record.success ? `it failed at ${record.data.failedAt} in ${record.data.phase} (${record.data.reason})` : `${failed} records its failure`;
  }
  const dir = storeLayout.checkpointDir(req.store, req.cluster, req.checkpointId);
  if (existsSync(dir) && !existsSync(storeLayout.manifest(req.store, req.cluster, req.checkpointId))) {
    const owner = await folderRun(dir);
    if (owner?.runId !== req.runId) return `an unfinished run (${owner?.workflowId ?? 'unknown'}) left its folder ${dir}`;
  }
  const layer = await layerOfId(req.store, req.cluster, req.checkpointId);
  if (layer) return `its disk layer ${layer} is still in use`;
  return undefined;
}

/** Records in the new folder which run it belongs to. */
export async function recordRun(dir: string, req: IdUse): Promise<void> {
  await writeFile(join(dir, RUN_RECORD), JSON.stringify({ workflowId: req.workflowId, runId: req.runId }) + '\n', { mode: 0o600 });
}
