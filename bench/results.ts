// The shape of bench/results/latest.json and how sections put figures into it.
import { summarize, type Summary } from '../common/stats';
import type { MachineInfo } from './machine';

export interface Goal {
  op: '<=' | '>=';
  value: number;
}

export interface Metric extends Summary {
  unit: string;
  goal?: Goal;
  met?: boolean;
  what: string;
}

export function metric(values: number[], unit: string, what: string, goal?: Goal): Metric {
  const s = summarize(values);
  const m: Metric = { ...s, unit, what };
  if (goal) {
    m.goal = goal;
    m.met = goal.op === '<=' ? s.median <= goal.value : s.median >= goal.value;
  }
  return m;
}

/** `mode`, `reps`, and each section's configuration under its name. */
export type BenchConfig = { mode: 'quick' | 'full'; reps: number } & Record<string, unknown>;

/**
 * latest.json: the run's facts, each section's raw result under the section's name (`guest`, `tiny`, …),
 * the headline figures as top-level keys (`downtime_ratio`, …), everything else under `metrics`.
 */
export interface BenchResults {
  schema: 'vccr-bench/1';
  mode: string;
  startedAt: string;
  finishedAt?: string;
  durationSec?: number;
  machine: MachineInfo & { loadAverageAtEnd?: number[] };
  qemu_version: string;
  config: BenchConfig;
  metrics: Record<string, Metric>;
  charts?: string[];
  errors: string[];
  [key: string]: unknown;
}

/** Where a section's derive() puts its figures. */
export class MetricSink {
  /** Headline keys in the order they were set, with the label the table shows. */
  readonly headlines: Array<{ key: string; label: string }> = [];

  constructor(readonly results: BenchResults) {}

  /** A headline figure: a top-level key of latest.json, first in the table. */
  headline(key: string, label: string, m: Metric): void {
    this.results[key] = m;
    this.headlines.push({ key, label });
  }

  /** Any other figure, under `metrics`. */
  metric(name: string, m: Metric): void {
    this.results.metrics[name] = m;
  }

  /** Another top-level key (fits of a scaling curve, say). */
  set(key: string, value: unknown): void {
    this.results[key] = value;
  }
}
