// Human output of the CLI: progress lines while an operation runs, tables for results.
import type { OperationProgress } from '../workflows/definitions';

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
