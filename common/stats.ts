// Small statistics over lists of numbers. Pure (no Node imports): workflows use it for barrier skews, the
// benchmark for its distributions over repetitions.

export const minOf = (xs: number[]): number => Math.min(...xs);
export const maxOf = (xs: number[]): number => Math.max(...xs);

/** Largest minus smallest; 0 for an empty list (e.g. the skew of a barrier no VM went through). */
export const spread = (xs: number[]): number => (xs.length ? maxOf(xs) - minOf(xs) : 0);

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
  /** 25th and 75th percentiles (linear interpolation). */
  p25: number;
  p75: number;
  mean: number;
  values: number[];
}

/** The q-quantile of an ascending list, interpolating linearly; NaN for an empty list. */
export function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  return a + (b - a) * (pos - lo);
}

/** Median of the finite values. */
export const median = (xs: number[]): number => quantile(xs.filter((v) => Number.isFinite(v)).sort((a, b) => a - b), 0.5);

export function summarize(values: number[], digits = 3): Summary {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  const round = (x: number) => (Number.isFinite(x) ? Number(x.toFixed(digits)) : x);
  return {
    n: sorted.length,
    median: round(quantile(sorted, 0.5)),
    min: round(sorted[0] ?? Number.NaN),
    max: round(sorted[sorted.length - 1] ?? Number.NaN),
    p25: round(quantile(sorted, 0.25)),
    p75: round(quantile(sorted, 0.75)),
    mean: round(sorted.reduce((s, v) => s + v, 0) / (sorted.length || 1)),
    values: values.map(round),
  };
}

/** Least-squares line y = a + b x. */
export function linearFit(xs: number[], ys: number[]): { intercept: number; slope: number; r2: number } {
  const n = xs.length;
  if (n < 2) return { intercept: ys[0] ?? 0, slope: 0, r2: 0 };
  const mx = xs.reduce((s, v) => s + v, 0) / n;
  const my = ys.reduce((s, v) => s + v, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = (xs[i] as number) - mx;
    const dy = (ys[i] as number) - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  const slope = sxx ? sxy / sxx : 0;
  return { intercept: my - slope * mx, slope, r2: sxx && syy ? (sxy * sxy) / (sxx * syy) : 0 };
}
