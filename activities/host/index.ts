// Activities a host worker runs, bound to its runtime. Workflows call them on the host's task queue.
import { inspectVms, stopVms, ensureVmsGone } from './lifecycle';
import { prepareCheckpoint, pauseVms, freezeDisks, saveVmStates, resumeVms } from './checkpoint-steps';
import { launchVms, verifyStateFiles, loadVmStates } from './restore-steps';
import { ProgressReporter, type SignalProgress } from './progress';
import type { HostRuntime } from './runtime';
import { allHeartbeating } from '../heartbeat';
import type {
  EnsureGoneRequest,
  FreezeRequest,
  LaunchRequest,
  LoadRequest,
  PauseRequest,
  PrepareRequest,
  ResumeRequest,
  SaveRequest,
  StopRequest,
  VerifyStateRequest,
  VmRef,
} from './types';

export function createHostActivities(runtime: HostRuntime, signalProgress: SignalProgress) {
  return allHeartbeating({
    launchVms: (req: LaunchRequest) => launchVms(runtime, req),
    inspectVms: (req: VmRef) => inspectVms(runtime, req),
    stopVms: (req: StopRequest) => stopVms(runtime, req),
    ensureVmsGone: (req: EnsureGoneRequest) => ensureVmsGone(runtime, req),
    prepareCheckpoint: (req: PrepareRequest) => prepareCheckpoint(runtime, req),
    pauseVms: (req: PauseRequest) => pauseVms(runtime, req),
    freezeDisks: (req: FreezeRequest) => freezeDisks(runtime, req),
    saveVmStates: async (req: SaveRequest) => {
      const progress = new ProgressReporter(req.progressWorkflowId, signalProgress);
      try {
        return await saveVmStates(runtime, req, progress.report);
      } finally {
        // Not awaited: the last progress signal must not delay the save barrier (it is inside the pause).
        void progress.flush();
      }
    },
    resumeVms: (req: ResumeRequest) => resumeVms(runtime, req),
    verifyStateFiles: (req: VerifyStateRequest) => verifyStateFiles(runtime, req),
    loadVmStates: async (req: LoadRequest) => {
      const progress = new ProgressReporter(req.progressWorkflowId, signalProgress);
      try {
        return await loadVmStates(runtime, req, progress.report);
      } finally {
        // Not awaited: the last progress signal must not delay the load barrier.
        void progress.flush();
      }
    },
  });
}

export type HostActivities = ReturnType<typeof createHostActivities>;
