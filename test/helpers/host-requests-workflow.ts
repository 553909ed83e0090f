// A workflow that only a test registers: it sends requests exactly as given — hostile or malformed —
// straight to a host worker's task queue, the way a confused or malicious controller might, and reports
// what the host answered for each.
import { proxyActivities, ApplicationFailure, ActivityFailure } from '@temporalio/workflow';

export interface RawHostCall {
  activity: string;
  input: unknown;
}

export async function sendRawHostRequests(req: { taskQueue: string; calls: RawHostCall[] }): Promise<string[]> {
  const host = proxyActivities<Record<string, (input: unknown) => Promise<unknown>>>({
    taskQueue: req.taskQueue,
    startToCloseTimeout: '30 seconds',
    retry: { maximumAttempts: 1 },
  });
  const outcomes: string[] = [];
  for (const call of req.calls) {
    const activity = host[call.activity];
    if (!activity) throw new Error(`no activity ${call.activity}`);
    try {
      outcomes.push(`ACCEPTED ${JSON.stringify(await activity(call.input)).slice(0, 200)}`);
    } catch (err) {
      const cause = err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause : undefined;
      outcomes.push(`${cause?.type ?? 'error'}: ${cause?.message ?? String(err)}`);
    }
  }
  return outcomes;
}
