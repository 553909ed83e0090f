// The host's part of `vccr doctor`: everything a checkpoint and a restart of the spec will ask of this
// host, checked here, with this worker's privileges, namespaces and mounts — exactly as the VMs will run.
import { markerName, type PreflightReply } from '../../common/doctor';
import type { ResolvedVm } from '../../common/spec';
import { allHeartbeating } from '../heartbeat';
import { sharedPreflightActivities } from '../preflight';
import { checkAccelerators, checkQemuBinary, checkUffdWriteProtect } from '../preflight/qemu';
import { checkStore } from '../preflight/store';
import { checkImages, checkNetwork, checkStateDir } from '../preflight/vm-needs';
import type { HostRuntime } from './runtime';
import { hostPreflightRequestSchema, readMarkersRequestSchema, removeMarkerRequestSchema } from './requests';
import { validated } from './validated';

export interface HostPreflightRequest {
  /** Names the doctor's marker folder in the store (unique per doctor run). */
  token: string;
  cluster?: string;
  store?: string;
  /** RAM of the whole cluster: what a checkpoint writes to the store. */
  storeNeedBytes: number;
  /** This host's VMs, resolved. */
  vms: ResolvedVm[];
}

export function createHostPreflightActivities(runtime: HostRuntime) {
  const shared = sharedPreflightActivities();
  // A host trusts no caller: these requests are validated like every other (requests.ts).
  return allHeartbeating({
    clockSample: shared.clockSample,
    readStoreMarkers: validated('readStoreMarkers', readMarkersRequestSchema, shared.readStoreMarkers),
    removeStoreMarker: validated('removeStoreMarker', removeMarkerRequestSchema, shared.removeStoreMarker),
    hostPreflight: validated('hostPreflight', hostPreflightRequestSchema, async (req: HostPreflightRequest): Promise<PreflightReply> => {
      const stateDir = runtime.registry.stateDir;
      const { check: qemu, works } = await checkQemuBinary(runtime.qemu.path);
      const checks = [qemu];
      if (works) {
        checks.push(await checkAccelerators(runtime.qemu.path, new Set(req.vms.map((vm) => vm.accel))));
        checks.push(await checkUffdWriteProtect(runtime.qemu.path, stateDir));
      }
      checks.push(await checkStateDir(stateDir, req.cluster, req.vms));
      checks.push(await checkImages(runtime.hostId, req.vms));
      checks.push(await checkNetwork(runtime.hostId, req.vms));
      if (!req.store) return { checks };
      const marker = markerName({ kind: 'host', host: runtime.hostId });
      const store = await checkStore(req.store, req.storeNeedBytes, { token: req.token, name: marker });
      checks.push(store.check);
      return { checks, ...(store.markerWritten ? { marker } : {}) };
    }),
  });
}

export type HostPreflightActivities = ReturnType<typeof createHostPreflightActivities>;
