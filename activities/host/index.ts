// Activities a host worker runs, bound to its runtime. Workflows call them on the host's task queue. The
// worker trusts no caller: every request is validated with its schema (requests.ts) before anything is
// done, and refused as InvalidRequest, naming the field, otherwise.
import { inspectVms, stopVms, ensureVmsGone } from './lifecycle';
import { prepareCheckpoint, pauseVms, freezeDisks, resumeVms } from './checkpoint-steps';
import { saveVmStates } from './save-step';
import { captureVms, finishSaves } from './capture-step';
import { cancelLiveWrites, captureLive, finishLiveWrites, prepareLive } from './live-capture';
import { launchVms, verifyStateFiles, loadVmStates } from './restore-steps';
import { compactDisks } from './compact';
import { ProgressReporter, type SignalProgress } from './progress';
import type { HostRuntime } from './runtime';
import { allHeartbeating } from '../heartbeat';
import { withStepHooks } from '../test-hooks';
import { validated } from './validated';
import {
  ensureGoneRequestSchema,
  captureRequestSchema,
  finishSavesRequestSchema,
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
  liveCancelRequestSchema,
  liveCaptureRequestSchema,
  liveFinishRequestSchema,
  livePrepareRequestSchema,
} from './requests';

export function createHostActivities(runtime: HostRuntime, signalProgress: SignalProgress) {
  /** Runs a streaming step that reports bytes to the workflow's progress through signals. */
  const reporting = async <T>(req: { progressWorkflowId: string }, step: (report: ProgressReporter['report']) => Promise<T>): Promise<T> => {
    const progress = new ProgressReporter(req.progressWorkflowId, signalProgress);
    try {
      return await step(progress.report);
    } finally {
      // Not awaited: the last progress signal must not delay the barrier (a save's is inside the pause).
      void progress.flush();
    }
  };
  return allHeartbeating(withStepHooks({
    launchVms: validated('launchVms', launchRequestSchema, (req) => launchVms(runtime, req)),
    inspectVms: validated('inspectVms', vmRefSchema, (req) => inspectVms(runtime, req)),
    stopVms: validated('stopVms', stopRequestSchema, (req) => stopVms(runtime, req)),
    ensureVmsGone: validated('ensureVmsGone', ensureGoneRequestSchema, (req) => ensureVmsGone(runtime, req)),
    prepareCheckpoint: validated('prepareCheckpoint', prepareRequestSchema, (req) => prepareCheckpoint(runtime, req)),
    pauseVms: validated('pauseVms', pauseRequestSchema, (req) => pauseVms(runtime, req)),
    freezeDisks: validated('freezeDisks', freezeRequestSchema, (req) => freezeDisks(runtime, req)),
    saveVmStates: validated('saveVmStates', saveRequestSchema, (req) => reporting(req, (report) => saveVmStates(runtime, req, report))),
    captureVms: validated('captureVms', captureRequestSchema, (req) => captureVms(runtime, req, new ProgressReporter(req.progressWorkflowId, signalProgress))),
    finishSaves: validated('finishSaves', finishSavesRequestSchema, (req) => finishSaves(runtime, req, new ProgressReporter(req.progressWorkflowId, signalProgress))),
    resumeVms: validated('resumeVms', resumeRequestSchema, (req) => resumeVms(runtime, req)),
    prepareLive: validated('prepareLive', livePrepareRequestSchema, (req) => prepareLive(runtime, req)),
    captureLive: validated('captureLive', liveCaptureRequestSchema, (req) => captureLive(runtime, req)),
    finishLiveWrites: validated('finishLiveWrites', liveFinishRequestSchema, (req) => reporting(req, (report) => finishLiveWrites(runtime, req, report))),
    cancelLiveWrites: validated('cancelLiveWrites', liveCancelRequestSchema, (req) => cancelLiveWrites(runtime, req)),
    verifyStateFiles: validated('verifyStateFiles', verifyStateRequestSchema, (req) => verifyStateFiles(runtime, req)),
    compactDisks: validated('compactDisks', compactRequestSchema, (req) => compactDisks(runtime, req)),
    loadVmStates: validated('loadVmStates', loadRequestSchema, (req) => reporting(req, (report) => loadVmStates(runtime, req, report))),
  }));
}

export type HostActivities = ReturnType<typeof createHostActivities>;
