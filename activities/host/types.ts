// Requests and replies of the host activities: one activity call per host per protocol step, carrying
// all of that host's VMs, so the cost of a barrier does not grow with the number of VMs per host. The
// request types are those of the schemas every host validates its input with (requests.ts).
import type { z } from 'zod';
import type { ResolvedVm, StateCodec } from '../../common/spec';
import type * as requests from './requests';

// ---- launch (and the restore's verify and load) ----

export type LaunchRequest = z.infer<typeof requests.launchRequestSchema>;

export interface DiskChain {
  id: string;
  /** Top (writable) layer. */
  active: string;
  /** Layers below, nearest first, ending with the spec's base image. */
  backing: string[];
}

export interface LaunchedVm {
  name: string;
  pid: number;
  qmpStatus: string;
  machineType: string;
  qemuVersion: string;
  argv: string[];
  disks: DiskChain[];
  consoleLog: string;
  launchedAt: string;
  /** The launch had already happened (retry after a crash). */
  alreadyRunning: boolean;
}

export type VerifyStateRequest = z.infer<typeof requests.verifyStateRequestSchema>;
export type LoadRequest = z.infer<typeof requests.loadRequestSchema>;

// ---- inspect and stop ----

export type VmRef = z.infer<typeof requests.vmRefSchema>;
export type StopRequest = z.infer<typeof requests.stopRequestSchema>;
export type EnsureGoneRequest = z.infer<typeof requests.ensureGoneRequestSchema>;

export interface VmStatus {
  name: string;
  /** The host has a record of this VM. */
  known: boolean;
  /** Its QEMU process exists. */
  alive: boolean;
  pid?: number;
  /** QMP run state (running, paused, postmigrate, inmigrate, ...), when reachable. */
  qmpStatus?: string;
  consoleLog?: string;
  error?: string;
}

// ---- checkpoint: prepare, pause, freeze, save, resume ----

export type PrepareRequest = z.infer<typeof requests.prepareRequestSchema>;

export interface PrepareReport {
  host: string;
  /** Epoch ms when the host received the request. */
  receivedAt: number;
  qemuVersion: string;
  storeFreeBytes: number;
  vms: Array<{
    name: string;
    qmpStatus: string;
    ramBytes: number;
    diskIds: string[];
    /** What the manifest records to relaunch it: the host's own record of how it was started. */
    config: ResolvedVm;
    machineType: string;
    argv: string[];
    consoleLog: string;
  }>;
}

export type PauseRequest = z.infer<typeof requests.pauseRequestSchema>;

export interface VmTimestamp {
  name: string;
  /** Epoch ms measured on the host right after QEMU confirmed the command. */
  at: number;
  /** QMP status before the command, where it was asked. */
  before?: string;
  /** Epoch ms when the host received the request (dispatch latency = this minus when it was sent). */
  receivedAt?: number;
  /** Bytes in the VM's console log at that moment (what the guest had printed when it was paused). */
  consoleOffset?: number;
  /** A load: when the host resumed the VM on the store barrier (epoch ms, after its `cont`), if it did. */
  resumedAt?: number;
}

export type FreezeRequest = z.infer<typeof requests.freezeRequestSchema>;

export interface FrozenDisk {
  id: string;
  /** The layer that became read-only: the checkpoint's disk. */
  frozen: string;
  /** Its backing chain, nearest first. */
  backing: string[];
  /** New writable layer on top of it. */
  newActive: string;
}

export interface FrozenVm {
  name: string;
  disks: FrozenDisk[];
  /** Epoch ms when its last disk was frozen. */
  at: number;
}

export type SaveRequest = z.infer<typeof requests.saveRequestSchema>;

export interface SavedState {
  name: string;
  file: string;
  size: number;
  sha256: string;
  startedAt: number;
  finishedAt: number;
  codec?: StateCodec;
  /** The migration stream's size, when the file is compressed. */
  rawSize?: number;
}

export type CaptureRequest = z.infer<typeof requests.captureRequestSchema>;

/** A host's capture: each VM's pause (QEMU's STOP time) and its frozen disks (VMs with disks only). */
export interface CaptureReport {
  paused: VmTimestamp[];
  frozen: FrozenVm[];
}

export type FinishSavesRequest = z.infer<typeof requests.finishSavesRequestSchema>;

export interface FinishSavesReport {
  saved: SavedState[];
  /** VMs resumed once their state was durable (QEMU's RESUME time). */
  resumed: VmTimestamp[];
  /** VMs saved but not resumed (their lease stays: the watchdog resumes them at the bound). */
  failed: Array<{ name: string; reason: string }>;
}

export type ResumeRequest = z.infer<typeof requests.resumeRequestSchema>;

export interface ResumeReport {
  resumed: VmTimestamp[];
  /** VMs that could not be resumed (the others were). */
  failed: Array<{ name: string; reason: string }>;
}

// ---- merging disk layers (compact.ts) ----

export type CompactRequest = z.infer<typeof requests.compactRequestSchema>;

// ---- live checkpoints (live-capture.ts) ----

export type LiveCaptureRequest = z.infer<typeof requests.liveCaptureRequestSchema>;
export type LivePrepareRequest = z.infer<typeof requests.livePrepareRequestSchema>;
export type LiveFinishRequest = z.infer<typeof requests.liveFinishRequestSchema>;
export type LiveCancelRequest = z.infer<typeof requests.liveCancelRequestSchema>;

export interface LiveCaptured {
  name: string;
  /** QEMU's STOP event time (epoch ms, this host's clock, µs resolution). */
  stoppedAt: number;
  /** QEMU's RESUME event time: the background snapshot resumed the guest here. */
  resumedAt: number;
  /** When `migrate` (background-snapshot) was sent. */
  snapshotAt: number;
  /** Its disks, frozen inside the pause (undefined: no disks). */
  frozen: FrozenVm;
  /** Epoch ms when the host received the step. */
  receivedAt: number;
  consoleOffset?: number;
}
