// The preflight report of `vccr doctor`: per participant (Temporal, the controller, every host) a list
// of checks, each ok / warn / fail with what was found and, for a problem, how to fix it. Pure: built by
// activities and the workflow, rendered by the CLI.

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface Check {
  /** Stable short name (qemu, accel, uffd-wp, store, same-store, clock, network, images, state-dir, worker, ...). */
  name: string;
  status: CheckStatus;
  /** What was found, one line. */
  detail: string;
  /** For warn and fail: what to do about it. */
  fix?: string;
}

export interface ParticipantReport {
  /** 'temporal', 'controller', or a host id. */
  participant: string;
  kind: 'temporal' | 'controller' | 'host';
  /** A host's task queue. */
  taskQueue?: string;
  checks: Check[];
}

export interface DoctorReport {
  /** The cluster the spec describes, if a spec was given. */
  cluster?: string;
  participants: ParticipantReport[];
  /** True when no check failed: the spec can be checkpointed and restarted as written. */
  ok: boolean;
}

/** What a participant's preflight activity returns. */
export interface PreflightReply {
  checks: Check[];
  /** The store check wrote this participant's marker (the same-store check looks for it). */
  marker?: string;
}

export const ok = (name: string, detail: string): Check => ({ name, status: 'ok', detail });
export const warn = (name: string, detail: string, fix: string): Check => ({ name, status: 'warn', detail, fix });
export const fail = (name: string, detail: string, fix: string): Check => ({ name, status: 'fail', detail, fix });

export function reportOk(participants: ParticipantReport[]): boolean {
  return participants.every((p) => p.checks.every((c) => c.status !== 'fail'));
}

/** Marker file names in the doctor's folder of the store: one per participant, never colliding with each other. */
export function markerName(participant: { kind: 'controller' } | { kind: 'host'; host: string }): string {
  return participant.kind === 'controller' ? 'controller' : `host-${participant.host}`;
}

/** The participant a marker file name stands for ('controller' or a host id). */
export function markerOwner(fileName: string): string | undefined {
  if (fileName === 'controller') return 'controller';
  return fileName.startsWith('host-') ? fileName.slice('host-'.length) : undefined;
}

/** One reading of a worker's clock: its wall clock when the activity began, and when Temporal scheduled it. */
export interface ClockSample {
  now: number;
  scheduledAt: number;
}

/**
 * A worker's clock relative to Temporal's, from several samples: `now - scheduledAt` is the clock offset
 * plus the delivery delay (never negative), so the smallest value is the best estimate (as NTP filters).
 */
export function offsetFromServer(samples: ClockSample[]): number | undefined {
  if (!samples.length) return undefined;
  return Math.min(...samples.map((s) => s.now - s.scheduledAt));
}

/** Beyond this, pause and resume barriers (timed by each host's clock) are skewed by as much: warn. */
export const CLOCK_WARN_MS = 50;
/** Beyond this, the pause of a checkpoint is spread over so long that we refuse to call the host ready. */
export const CLOCK_FAIL_MS = 500;

export function clockCheck(offsetMs: number, against: string): Check {
  const detail = `${offsetMs >= 0 ? '+' : ''}${Math.round(offsetMs)} ms from the ${against} (estimated through Temporal's timestamps)`;
  const fix = 'synchronise the clocks of every host and the controller (chrony or systemd-timesyncd against the same NTP servers)';
  const size = Math.abs(offsetMs);
  if (size > CLOCK_FAIL_MS) return fail('clock', detail, `${fix}: hosts pause and resume their VMs at agreed wall-clock times`);
  if (size > CLOCK_WARN_MS) return warn('clock', detail, `${fix}: an offset this large adds to every checkpoint's pause skew`);
  return ok('clock', detail);
}

/**
 * The same-store check of every participant that could write its marker. Participants are grouped by the
 * markers they see; the group of the controller (it commits manifests) — or, if the controller has no
 * marker, the largest group — is the store; everyone outside it sees another store at that path.
 */
export function sameStoreChecks(store: string, seen: Map<string, string[]>): Map<string, Check> {
  const key = (names: string[]) => [...names].sort().join(',');
  const groups = new Map<string, string[]>();
  for (const [participant, names] of seen) groups.set(key(names), [...(groups.get(key(names)) ?? []), participant]);
  const all = [...groups.values()].sort((a, b) => b.length - a.length);
  const reference = all.find((g) => g.includes('controller')) ?? all[0] ?? [];
  const label = (p: string) => (p === 'controller' ? 'the controller' : `host ${p}`);
  const out = new Map<string, Check>();
  for (const [participant] of seen) {
    const others = reference.filter((p) => p !== participant);
    if (reference.includes(participant)) {
      out.set(participant, ok('same-store', others.length ? `same store as ${others.map(label).join(', ')}` : 'no other participant to compare with'));
      continue;
    }
    out.set(
      participant,
      fail(
        'same-store',
        `${store} here is not the store ${reference.map(label).join(', ')} see: neither side sees the other's marker file`,
        `mount the shared store at ${store} on this host (compare the "store" lines: file system and source must match)`,
      ),
    );
  }
  return out;
}
