// Activities of `vccr doctor` that hosts and the controller both run: a clock sample, and the two later
// steps of the same-store marker protocol (see store.ts).
import { Context } from '@temporalio/activity';
import type { ClockSample } from '../../common/doctor';
import { sleep } from '../../node/proc';
import { readMarkers, removeMarker } from './store';

const MARKER_WAIT_MS = 5000;

export interface MarkerRequest {
  store: string;
  token: string;
}

export function sharedPreflightActivities() {
  return {
    /** This worker's wall clock now, and when Temporal scheduled this attempt (the server's clock). */
    clockSample: async (): Promise<ClockSample> => ({ now: Date.now(), scheduledAt: Context.current().info.currentAttemptScheduledTimestampMs }),
    /**
     * The markers this participant sees, waiting a little for those it expects: a network file system
     * may show a file another client just created only after its attribute cache expires.
     */
    readStoreMarkers: async (req: MarkerRequest & { expected: string[] }): Promise<string[]> => {
      const deadline = Date.now() + MARKER_WAIT_MS;
      for (;;) {
        const seen = await readMarkers(req.store, req.token);
        if (req.expected.every((m) => seen.includes(m)) || Date.now() > deadline) return seen;
        await sleep(250);
      }
    },
    removeStoreMarker: async (req: MarkerRequest & { marker: string }): Promise<void> => removeMarker(req.store, req.token, req.marker),
  };
}
