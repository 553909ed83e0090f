// Requests and replies of the host activities: one activity call per host per protocol step, carrying
// all of that host's VMs, so the cost of a barrier does not grow with the number of VMs per host.
import type { ResolvedVm, StateCodec } from '../../common/spec';

export interface VmRef {
  cluster: string;
  vms: string[];
}

export interface DiskChain {
  id: string;
  /** Top (writable) layer. */
  active: string;
  /** Layers below, nearest first, ending with the spec's base image. */
  backing: string[];
}

export interface LaunchRequest {
  cluster: string;
  store: string;
  /** Safe label of the launching operation; names the new disk layers and makes the call idempotent. */
  operationId: string;
  vms: ResolvedVm[];
  /** Restore: start each VM paused, waiting for its state, on a fresh overlay over its frozen disks. */
  restore?: {
    checkpointId: string;
    /** Per VM, per disk: the frozen chain (top first) recorded in the manifest. */
    frozenDisks: Record<string, Record<string, string[]>>;
  };
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

export interface PrepareRequest {
  cluster: string;
  store: string;
  checkpointId: string;
  vms: string[];
}

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

export interface PauseRequest {
  cluster: string;
  checkpointId: string;
  vms: string[];
  /** Longest the VMs may stay paused: then the host's watchdog resumes them itself, whatever else happens. */
  pauseBoundMs: number;
  /** Epoch ms to issue `stop` at, so every host pauses together (now, if already past). */
  notBefore?: number;
}

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
}

export interface FreezeRequest {
  cluster: string;
  store: string;
  checkpointId: string;
  vms: string[];
}

export interface FrozenDisk {
  id: string;
  /** The layer that became read-only: the checkpoint's disk. */
  frozen: string;
  /** Its backing chain, nearest first. */
  backing: string[];
  /** New writable layer on top of it. */
  newActive: string;
}

export interface SaveRequest {
  cluster: string;
  store: string;
  checkpointId: string;
  vms: string[];
  /** Workflow to send progress signals to. */
  progressWorkflowId: string;
  /** Compress the state files (the cluster spec's stateCompression). */
  compression?: StateCodec;
}

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

export interface LoadRequest {
  cluster: string;
  checkpointId: string;
  vms: Array<{ name: string; file: string; size: number; sha256: string; codec?: StateCodec }>;
  progressWorkflowId: string;
}

export interface ResumeRequest {
  cluster: string;
  vms: string[];
  /** The checkpoint whose pause this resume ends (releases the watchdog lease); absent for a restore. */
  checkpointId?: string;
  /** Optional epoch ms to issue `cont` at, so all hosts resume together. */
  notBefore?: number;
  /** The checkpoint is being abandoned: a save may still be running and must be cancelled first. */
  abandon?: boolean;
}

export interface ResumeReport {
  resumed: VmTimestamp[];
  /** VMs that could not be resumed (the others were). */
  failed: Array<{ name: string; reason: string }>;
}

export interface StopRequest {
  cluster: string;
  vms: string[];
  /** quit: ask QEMU to exit; kill: SIGKILL. Either way the host forgets the VM. */
  mode: 'quit' | 'kill';
}

export interface EnsureGoneRequest {
  cluster: string;
  vms: string[];
  /** Stop VMs that still run instead of refusing. */
  force: boolean;
}

export interface VerifyStateRequest {
  files: Array<{ vm: string; file: string; size: number; sha256: string }>;
}

export interface FrozenVm {
  name: string;
  disks: FrozenDisk[];
  /** Epoch ms when its last disk was frozen. */
  at: number;
}
