// What every part of the benchmark shares: where results go, progress lines on stderr, small helpers.
import { join, resolve } from 'node:path';

export const REPO = resolve(__dirname, '..', '..');
export const RESULTS = join(REPO, 'bench', 'results');
export const MiB = 1024 * 1024;
const BENCH_START = Date.now();

/** Seconds since the benchmark started. */
export const elapsedSec = (): number => Math.round((Date.now() - BENCH_START) / 1000);

/** A progress line on stderr, stamped with the seconds since the start. */
export function say(msg: string): void {
  process.stderr.write(`[bench ${((Date.now() - BENCH_START) / 1000).toFixed(0).padStart(4)}s] ${msg}\n`);
}

export const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

export function fmt(x: number, digits = 2): string {
  if (!Number.isFinite(x)) return 'n/a';
  if (Math.abs(x) >= 1000) return x.toFixed(0);
  return x.toFixed(digits);
}
