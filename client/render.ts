// Human output of the CLI (and the demo): progress lines while an operation runs, and one function per
// result that turns it into text. Commands choose between these and --json; nothing here does I/O
// except ProgressPrinter, which writes to the stream it is given.
import type { OperationProgress, ClusterState } from '../common/messages';
import type { CheckpointResult } from '../workflows/checkpoint';
import type { RestartResult } from '../workflows/restart';
import type { LaunchResult } from '../workflows/launch';
import type { InspectResult } from '../workflows/inspect';
import type { DeleteReport, GarbageReport, ListCheckpointsReply, VerifyReport } from '../activities/controller/types';
import type { Manifest, ResumeRecord } from '../common/manifest';
import type { DoctorReport, ParticipantReport } from '../common/doctor';
import { formatDuration } from '../common/protection';
import type { ProtectionStatus } from './protect';

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

const indent = (text: string) => text.replace(/^/gm, '  ');

function phaseTable(phases: Record<string, { start: number; end?: number }>): string {
  const rows = Object.entries(phases)
    .filter(([, t]) => t.end !== undefined)
    .map(([name, t]) => [name, formatMs((t.end ?? t.start) - t.start)]);
  return indent(table([['PHASE', 'TIME'], ...rows]));
}

export function describeLaunch(r: LaunchResult): string {
  return `cluster ${r.cluster} is up\n` + table([['VM', 'HOST', 'PID', 'STATUS', 'CONSOLE'], ...r.vms.map((v) => [v.name, v.host, String(v.pid), v.status, v.consoleLog])]);
}

export function describeCheckpoint(r: CheckpointResult): string {
  return (
    `checkpoint ${r.checkpointId} of ${r.cluster} committed: ${r.vms.length} VMs, ${formatBytes(r.totalBytes)}\n` +
    `  downtime ${formatMs(r.downtimeMs)} (first pause → last resume), pause skew ${formatMs(r.pauseSkewMs)}, resume skew ${formatMs(r.resumeSkewMs)}\n` +
    phaseTable(r.phases) +
    (r.resumeFailures.length ? `\n  NOT RESUMED: ${r.resumeFailures.join('; ')}` : '')
  );
}

export function describeRestart(r: RestartResult): string {
  return (
    `cluster ${r.cluster} restarted from ${r.checkpointId}: ${r.vms.length} VMs, restore ${formatMs(r.restoreMs)}, resume skew ${formatMs(r.resumeSkewMs)}\n` +
    phaseTable(r.phases) +
    (r.unreachableHosts.length ? `\n  unreachable old hosts (remapped away): ${r.unreachableHosts.join(', ')}` : '')
  );
}

/** `vccr status` without a cluster: one line per cluster record. */
export function describeClusters(states: Array<ClusterState & { watch?: string }>): string {
  if (!states.length) return 'no clusters';
  const rows = states.map((s) => [
    s.cluster,
    s.status,
    String(Object.keys(s.placement).length),
    s.lastCheckpointId ?? '-',
    s.lock ? `${s.lock.operation} (${s.lock.workflowId})` : '-',
    s.watch ?? 'not protected',
  ]);
  return table([['CLUSTER', 'STATUS', 'VMS', 'LAST CHECKPOINT', 'BUSY WITH', 'WATCH'], ...rows]);
}

/** `vccr status <cluster>`: the record and every VM as its host sees it. */
export function describeStatus(r: InspectResult, protection?: ProtectionStatus): string {
  const s = r.state;
  const busy = s.lock ? `, busy with ${s.lock.operation} (${s.lock.workflowId})` : '';
  const rows = r.vms.map((v) => [v.name, v.host, v.pid ? String(v.pid) : '-', v.alive ? 'alive' : v.known ? 'dead' : 'unknown', v.qmpStatus ?? v.error ?? '-']);
  const protected_ = protection ? `${describeProtection(protection)}\n` : '';
  return `cluster ${r.cluster}: ${s.status}${busy}, last checkpoint ${s.lastCheckpointId ?? '-'}\n` + protected_ + table([['VM', 'HOST', 'PID', 'PROCESS', 'QMP STATUS'], ...rows]);
}

export function describeCheckpointList(r: ListCheckpointsReply): string {
  const rows = r.committed.map((c) => [c.checkpointId, c.committedAt, String(c.vms), formatBytes(c.totalBytes), c.hosts.join(',')]);
  const committed = r.committed.length ? table([['CHECKPOINT', 'COMMITTED', 'VMS', 'SIZE', 'HOSTS'], ...rows]) : 'no committed checkpoints';
  const failedRows = r.failed.map((f) => [f.checkpointId, f.failedAt, f.phase, f.reason]);
  const failed = r.failed.length ? `\n\nfailed:\n${table([['CHECKPOINT', 'FAILED AT', 'PHASE', 'REASON'], ...failedRows])}` : '';
  return committed + failed;
}

/** A checkpoint's manifest: every VM's state file and its pause/save/resume times relative to the first pause. */
export function describeManifest(m: Manifest, resume: ResumeRecord | undefined): string {
  const resumed = new Map((resume?.vms ?? []).map((v) => [v.name, v.resumedAt]));
  const t0 = Math.min(...m.vms.map((v) => v.timings.pausedAt));
  const rows = m.vms.map((v) => {
    const resumedAt = resumed.get(v.name);
    return [
      v.name,
      v.host,
      v.state.file,
      formatBytes(v.state.size),
      v.state.sha256.slice(0, 12),
      `+${v.timings.pausedAt - t0} ms`,
      `+${v.timings.savedAt - t0} ms`,
      resumedAt === undefined ? '-' : `+${resumedAt - t0} ms`,
      v.disks.map((d) => d.id).join(',') || '-',
    ];
  });
  return (
    `checkpoint ${m.checkpointId} of ${m.cluster}, committed ${m.committedAt}, ${formatBytes(m.totalBytes)}\n` +
    table([['VM', 'HOST', 'STATE FILE', 'SIZE', 'SHA256', 'PAUSED', 'SAVED', 'RESUMED', 'DISKS'], ...rows])
  );
}

export function describeVerify(r: VerifyReport): string {
  return r.ok
    ? `checkpoint ${r.checkpointId}: OK (${r.files.length} state files match their checksums)`
    : `checkpoint ${r.checkpointId}: DAMAGED\n  ${r.problems.join('\n  ')}`;
}

export function describeDelete(r: DeleteReport & GarbageReport): string {
  return `deleted checkpoint ${r.checkpointId} (${r.removedFiles.length} files, ${r.removedLayers.length} unreferenced disk layers)`;
}

/** `vccr doctor`: each participant's checks, every problem with its fix, and the verdict. */
export function describeDoctor(r: DoctorReport): string {
  const mark = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' } as const;
  const title = (p: ParticipantReport) =>
    p.kind === 'temporal' ? 'Temporal' : p.kind === 'controller' ? 'controller (the worker running the check)' : `host ${p.participant} (task queue ${p.taskQueue ?? '?'})`;
  const width = Math.max(0, ...r.participants.flatMap((p) => p.checks.map((c) => c.name.length)));
  const blocks = r.participants.map((p) => {
    const lines = p.checks.map((c) => `  ${mark[c.status]}  ${c.name.padEnd(width)}  ${c.detail}${c.fix && c.status !== 'ok' ? `\n        fix: ${c.fix}` : ''}`);
    return `${title(p)}\n${lines.join('\n') || '  (nothing to check)'}`;
  });
  const problems = r.participants.flatMap((p) => p.checks.filter((c) => c.status === 'fail').map((c) => `${p.kind === 'host' ? `host ${p.participant}` : p.participant}: ${c.name}`));
  const verdict = problems.length
    ? `doctor: ${problems.length} problem${problems.length === 1 ? '' : 's'} (${problems.join(', ')}): ${r.cluster ? `cluster ${r.cluster}` : 'the hosts'} cannot be checkpointed and restarted as ${r.cluster ? 'written' : 'configured'}`
    : `doctor: all checks passed${r.cluster ? ` — cluster ${r.cluster} can be checkpointed and restarted as written` : ''}`;
  return `${blocks.join('\n\n')}\n\n${verdict}`;
}

/** Prints progress: rewrites one status block on a terminal, prints phase changes otherwise. */
export class ProgressPrinter {
  private lastPhase = '';
  private lines = 0;

  constructor(private readonly out: NodeJS.WriteStream) {}

  update = (p: OperationProgress): void => {
    if (!this.out.isTTY) {
      if (p.phase !== this.lastPhase) {
        this.out.write(`  ${p.operation} ${p.cluster}${p.checkpointId ? ` ${p.checkpointId}` : ''}: ${p.phase}\n`);
        this.lastPhase = p.phase;
      }
      return;
    }
    const states = new Map<string, number>();
    for (const vm of Object.values(p.vms)) states.set(vm.state, (states.get(vm.state) ?? 0) + 1);
    const summary = [...states].map(([s, n]) => `${n} ${s}`).join(', ');
    const bytes = p.bytesTotal ? `  ${formatBytes(p.bytesDone)} / ${formatBytes(p.bytesTotal)}` : '';
    const text = [`  ${p.operation} ${p.cluster}${p.checkpointId ? ` ${p.checkpointId}` : ''}`, `  phase ${p.phase.padEnd(9)} VMs: ${summary}${bytes}`];
    if (this.lines) this.out.write(`\x1b[${this.lines}A`);
    for (const line of text) this.out.write(`\x1b[2K${line}\n`);
    this.lines = text.length;
  };
}

/** `vccr protect`, and part of `vccr status`: the protection Schedule and the watch. */
export function describeProtection(p: ProtectionStatus): string {
  const lines: string[] = [];
  const s = p.schedule;
  if (!s) lines.push(`cluster ${p.cluster} is not protected (no schedule)`);
  else {
    const keep = [`last ${s.retention.keepLast}`, `hourly ${s.retention.keepHourly}`, `daily ${s.retention.keepDaily}`].join(', ');
    lines.push(
      `schedule ${s.scheduleId}: every ${formatDuration(s.everyMs)} (jitter up to ${formatDuration(s.jitterMs)}), ${s.mode === 'live' ? 'live' : 'stop-and-save'} checkpoints, keep ${keep}` +
        `${s.paused ? `; PAUSED${s.note ? ` (${s.note})` : ''}` : ''}`,
      `  ${s.actionsTaken} runs so far, ${s.skippedOverlap} skipped because one was still running`,
      `  next runs: ${s.paused ? '(paused)' : s.nextRuns.join(', ') || '-'}`,
    );
    if (s.recent.length) {
      lines.push('  recent runs:');
      lines.push(table([['SCHEDULED', 'STATUS', 'OUTCOME'], ...s.recent.map((r) => [r.scheduledAt, r.status, r.outcome ?? '-'])]).replace(/^/gm, '    '));
    }
  }
  const w = p.watch;
  if (!w) lines.push(`watch: not running`);
  else {
    lines.push(`watch: ${w.phase.toUpperCase()} since ${new Date(w.since).toISOString()}: ${w.reason}`);
    const last = w.recoveries.at(-1);
    if (last) lines.push(`  last recovery: ${last.outcome} at ${new Date(last.endedAt).toISOString()} (${last.detail})`);
  }
  return lines.join('\n');
}
