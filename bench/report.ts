// The report on stdout: the headline figures and every metric as a table, then each section's own text.
import type { Summary } from '../common/stats';
import type { BenchResults, Metric } from './results';
import { fmt } from './util';

/** A text block: `title`, then one row per entry (median, min–max), largest first unless `sorted` is false. */
export function summaryLines(title: string, rows: Record<string, Summary> | undefined, sorted = true): string {
  if (!rows || !Object.keys(rows).length) return '';
  const w = Math.max(...Object.keys(rows).map((k) => k.length));
  const entries = Object.entries(rows);
  if (sorted) entries.sort((a, b) => b[1].median - a[1].median);
  return `\n${title}\n${entries.map(([k, v]) => `  ${k.padEnd(w)}  ${fmt(v.median, 0).padStart(7)}   (${fmt(v.min, 0)}–${fmt(v.max, 0)})\n`).join('')}`;
}

/** Columns padded to their widest cell, with a rule under the first row. */
export function textTable(rows: string[][]): string {
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length))) ?? [];
  const line = (r: string[]) => r.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join('  ').trimEnd();
  return [line(rows[0] ?? []), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

export function printTable(results: BenchResults, headlines: Array<{ key: string; label: string }>, sectionTexts: string[]): void {
  const rows: string[][] = [['metric', 'median', 'spread (min–max; IQR)', 'n', 'goal', 'met?']];
  const add = (name: string, m: Metric | undefined) => {
    if (!m) return;
    rows.push([
      name,
      `${fmt(m.median)} ${m.unit}`.trim(),
      `${fmt(m.min)}–${fmt(m.max)}; ${fmt(m.p25)}–${fmt(m.p75)}`,
      String(m.n),
      m.goal ? `${m.goal.op} ${m.goal.value}` : '',
      m.goal ? (m.met ? 'yes' : 'NO') : '',
    ]);
  };
  for (const h of headlines) add(h.label, results[h.key] as Metric | undefined);
  rows.push(['', '', '', '', '', '']);
  for (const [name, m] of Object.entries(results.metrics)) add(name, m);
  process.stdout.write(`\nVCCR benchmark (${results.mode}) — ${results.machine.cpus}× ${results.machine.cpuModel}, ${results.qemu_version}\n\n`);
  process.stdout.write(`${textTable(rows)}\n`);
  for (const text of sectionTexts) process.stdout.write(text);
  if (results.errors.length) process.stdout.write(`\nERRORS:\n  ${results.errors.join('\n  ')}\n`);
  process.stdout.write('\n');
}
