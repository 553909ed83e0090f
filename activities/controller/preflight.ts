// The controller's part of `vccr doctor`: it writes every manifest, so it must see the store too.
import { markerName, type PreflightReply } from '../../common/doctor';
import { allHeartbeating } from '../heartbeat';
import { sharedPreflightActivities } from '../preflight';
import { checkStore } from '../preflight/store';

export interface ControllerPreflightRequest {
  token: string;
  store?: string;
  storeNeedBytes: number;
}

export function createControllerPreflightActivities() {
  return allHeartbeating({
    ...sharedPreflightActivities(),
    controllerPreflight: async (req: ControllerPreflightRequest): Promise<PreflightReply> => {
      if (!req.store) return { checks: [] };
      const marker = markerName({ kind: 'controller' });
      const store = await checkStore(req.store, req.storeNeedBytes, { token: req.token, name: marker });
      return { checks: [store.check], ...(store.markerWritten ? { marker } : {}) };
    },
  });
}

export type ControllerPreflightActivities = ReturnType<typeof createControllerPreflightActivities>;
