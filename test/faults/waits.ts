// Waiting for a running operation to reach a phase (through its progress query).
import type { TestBed } from '../../harness/testbed';
import { sleep } from '../../node/proc';
import { progressQuery } from '../../common/messages';
import { toVccrError } from '../../client/errors';

export async function waitForPhase(bed: TestBed, workflowId: string, phases: string[], phase: string, timeoutMs = 60_000): Promise<string> {
  const handle = (await bed.temporal()).workflow.getHandle(workflowId);
  const target = phases.indexOf(phase);
  const deadline = Date.now() + timeoutMs;
  let seen = 'starting';
  while (Date.now() < deadline) {
    const p = await handle.query(progressQuery).catch(() => undefined);
    if (p) seen = p.phase;
    if (phases.indexOf(seen) >= target || seen === 'done' || seen === 'abort' || seen === 'undo') return seen;
    await sleep(5);
  }
  throw new Error(`workflow ${workflowId} did not reach ${phase} (last seen ${seen})`);
}

/** The workflow's outcome: 'completed', or 'failed: <one-line reason>'. */
export async function outcomeOf(bed: TestBed, workflowId: string): Promise<string> {
  try {
    await (await bed.temporal()).workflow.getHandle(workflowId).result();
    return 'completed';
  } catch (err) {
    return `failed: ${toVccrError(err).message}`;
  }
}
