// The two clock rules of a live checkpoint, as pure functions (no workflow state, no I/O):
//
// - clockRefusals: before anything is paused, a host whose clock is provably off by more than the
//   tolerance ε is refused. The workflow sent prepare at S and saw its result at R; the host says it
//   received it at r (its own clock). Real time of the receipt lies in [S, R], so a host clock within ε of
//   the controller's gives r ∈ [S − ε, R + ε]; anything outside is off by more than ε.
// - checkCut: after the capture, the checkpoint is a consistent cut only if there is an instant at which
//   every VM was paused: every VM's STOP precedes every VM's RESUME. Each VM's snapshot is its state at some
//   instant inside its own [STOP, RESUME] (QEMU 7.2 resumes it by itself once its device state is taken),
//   so with such a common instant t* every snapshot equals that VM's state at t*. STOP and RESUME of VMs
//   on one host are read from one clock; across hosts the comparison needs a margin of ε.

export interface CutSample {
  vm: string;
  host: string;
  /** QEMU's STOP timestamp (epoch ms, the host's clock). */
  stoppedAt: number;
  /** QEMU's RESUME timestamp (epoch ms, the host's clock). */
  resumedAt: number;
}

export type CutVerdict =
  | { ok: true; lastStopAt: number; firstResumeAt: number; toleranceMs: number; marginMs: number }
  | { ok: false; reason: string; lastStopAt: number; firstResumeAt: number; toleranceMs: number };

interface HostExtremes {
  host: string;
  lastStop: CutSample;
  firstResume: CutSample;
}

function extremesByHost(samples: CutSample[]): HostExtremes[] {
  const byHost = new Map<string, HostExtremes>();
  for (const s of samples) {
    const e = byHost.get(s.host);
    if (!e) byHost.set(s.host, { host: s.host, lastStop: s, firstResume: s });
    else {
      if (s.stoppedAt > e.lastStop.stoppedAt) e.lastStop = s;
      if (s.resumedAt < e.firstResume.resumedAt) e.firstResume = s;
    }
  }
  return [...byHost.values()];
}

/**
 * Whether every STOP precedes every RESUME: strictly on one host, by more than `toleranceMs` across
 * hosts. The verdict names the worst pair when it fails; marginMs is the smallest slack found.
 */
export function checkCut(samples: CutSample[], toleranceMs: number): CutVerdict {
  if (samples.length === 0) return { ok: false, reason: 'no VM reported its STOP and RESUME times', lastStopAt: 0, firstResumeAt: 0, toleranceMs };
  const lastStopAt = Math.max(...samples.map((s) => s.stoppedAt));
  const firstResumeAt = Math.min(...samples.map((s) => s.resumedAt));
  const hosts = extremesByHost(samples);
  let worst: { margin: number; stop: CutSample; resume: CutSample; needed: number } | undefined;
  for (const a of hosts) {
    for (const b of hosts) {
      const needed = a.host === b.host ? 0 : toleranceMs;
      // Slack left after the required margin: must be > 0 (the STOP strictly before the RESUME).
      const margin = b.firstResume.resumedAt - a.lastStop.stoppedAt - needed;
      if (!worst || margin < worst.margin) worst = { margin, stop: a.lastStop, resume: b.firstResume, needed };
    }
  }
  if (!worst) return { ok: false, reason: 'no host reported', lastStopAt, firstResumeAt, toleranceMs };
  if (worst.margin > 0) return { ok: true, lastStopAt, firstResumeAt, toleranceMs, marginMs: worst.margin };
  const { stop, resume, needed } = worst;
  const gap = resume.resumedAt - stop.stoppedAt;
  const reason =
    `the cut is not consistent: VM ${resume.vm} (host ${resume.host}) ran again at ${resume.resumedAt.toFixed(3)} ` +
    `${gap >= 0 ? `only ${gap.toFixed(3)} ms after` : `${(-gap).toFixed(3)} ms before`} VM ${stop.vm} (host ${stop.host}) was stopped` +
    (needed ? ` (host clocks may differ by ${needed} ms)` : '');
  return { ok: false, reason, lastStopAt, firstResumeAt, toleranceMs };
}

export interface ClockProbe {
  host: string;
  /** The host's clock when it received prepare (epoch ms). */
  receivedAt: number;
}

/**
 * Hosts whose clock is provably off by more than `toleranceMs`: prepare was sent at `sentAt` and its result
 * seen at `repliedAt` (the controller's clock), yet the host's receipt time lies outside that window ± ε.
 */
export function clockRefusals(probes: ClockProbe[], sentAt: number, repliedAt: number, toleranceMs: number): string[] {
  return probes.flatMap((p) => {
    if (p.receivedAt < sentAt - toleranceMs) return [`host ${p.host}'s clock is at least ${(sentAt - p.receivedAt).toFixed(0)} ms behind the controller's (tolerance ${toleranceMs} ms)`];
    if (p.receivedAt > repliedAt + toleranceMs) return [`host ${p.host}'s clock is at least ${(p.receivedAt - repliedAt).toFixed(0)} ms ahead of the controller's (tolerance ${toleranceMs} ms)`];
    return [];
  });
}

/**
 * How long after the pause instant T the hosts start their snapshots (QEMU resumes each guest right after
 * its own): a host that stops up to this much late (its clock off by ε, its timer, event loop or QEMU's
 * `stop` late) still stops before any guest anywhere runs again. It adds to every guest's pause. Default:
 * twice ε (one host ahead, another behind) plus 90 ms of scheduling slack — on the loaded 2-core test
 * machine (load 10–15) hosts stopped up to ~65 ms after T, and with 10 or 40 ms of slack live checkpoints
 * were refused by the cut check (fault run lh-1; bench runs of 4 guests and of 16 hosts). On quiet hosts
 * the spec's `liveSnapshotGapMs` can be lower; a cut broken anyway is refused, never committed.
 */
export function snapshotGap(toleranceMs: number, configuredMs?: number): number {
  return configuredMs ?? 2 * toleranceMs + 90;
}
