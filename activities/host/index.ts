// Activities a host worker runs, bound to its runtime. Workflows call them on the host's task queue. The
// worker trusts no caller: every request is validated with its schema (requests.ts) before anything is
// done, and refused as InvalidRequest, naming the field, otherwise.
import { inspectVms, stopVms, ensureVmsGone } from './lifecycle';
import { prepareCheckpoint, pauseVms, freezeDisks, resumeVms } from './checkpoint-steps';
import { saveVmStates } from './save-step';
import { launchVms, verifyStateFiles, loadVmStates } from './restore-steps';
import { compactDisks } from './compact';
import { ProgressReporter, type SignalProgress } from './progress';
import type { HostRuntime } from './runtime';
import { allHeartbeating } from '../heartbeat';
import { withStepHooks } from '../test-hooks';
import { validated } from './validated';
import {
  ensureGoneRequestSchema,
  freezeRequestSchema,
  launchRequestSchema,
  loadRequestSchema,
  pauseRequestSchema,
  prepareRequestSchema,
  resumeRequestSchema,
  saveRequestSchema,
  stopRequestSchema,
  verifyStateRequestSchema,
  vmRefSchema,
  compactRequestSchema,
} from './requests';

export function createHostActivities(runtime: HostRuntime, signalProgress: SignalProgress) {
  return allHeartbeating(withStepHooks({
    launchVms: validated('launchVms', launchRequestSchema, (req) => launchVms(runtime, req)),
    inspectVms: validated('inspectVms', vmRefSchema, (req) => inspectVms(runtime, req)),
    stopVms: validated('stopVms', stopRequestSchema, (req) => stopVms(runtime, req)),
    ensureVmsGone: validated('ensureVmsGone', ensureGoneRequestSchema, (req) => ensureVmsGone(runtime, req)),
    prepareCheckpoint: validated('prepareCheckpoint', prepareRequestSchema, (req) => prepareCheckpoint(runtime, req)),
    pauseVms: validated('pauseVms', pauseRequestSchema, (req) => pauseVms(runtime, req)),
    freezeDisks: validated('freezeDisks', freezeRequestSchema, (req) => freezeDisks(runtime, req)),
    saveVmStates: validated('saveVmStates', saveRequestSchema, async (req) => {
      const progress = new ProgressReporter(req.progressWorkflowId, signalProgress);
      try {
        return await saveVmStates(runtime, req, progress.report);
      } finally {
        // Not awaited: the last progress signal must not delay the save barrier (it is inside the pause).
        void progress.flush();
      }
    }),
    resumeVms: validated('resumeVms', resumeRequestSchema, (req) => resumeVms(runtime, req)),
    verifyStateFiles: validated('verifyStateFiles', verifyStateRequestSchema, (req) => verifyStateFiles(runtime, req)),
    compactDisks: validated('compactDisks', compactRequestSchema, (req) => compactDisks(runtime, req)),
    loadVmStates: validated('loadVmStates', loadRequestSchema, async (req) => {
      const progress = new ProgressReporter(req.progressWorkflowId, signalProgress);
      try {
        return await loadVmStates(runtime, req, progress.report);
      } finally {
        // Not awaited: the last progress signal must not delay the load barrier.
        void progress.flush();
      }
    }),
  }));
}

export type HostActivities = ReturnType<typeof createHostActivities>;
