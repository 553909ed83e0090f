// A benchmark section: one file under bench/sections/ and one line in bench/sections/index.ts. It runs
// on a test bed, keeps its raw result under its name in latest.json, and derives its figures, charts
// and report text from that result alone (so a saved run can be re-rendered with --report).
import type { TestBed } from '../harness/testbed';
import type { DirectProcesses } from './bed-ops';
import type { BenchResults, MetricSink } from './results';

export interface RunContext {
  bed: TestBed;
  /** QEMUs the direct script launched, killed between steps and at the end. */
  procs: DirectProcesses;
  /** Repetitions of every headline measurement (5, or --reps). */
  reps: number;
  mode: 'quick' | 'full';
}

export interface Chart {
  /** File name under bench/results/. */
  file: string;
  svg: string;
}

export interface Section<C, R> {
  name: string;
  /** One line for --help and the table. */
  about: string;
  config: { full: C; quick: C };
  /** Host workers of its test bed; consecutive sections with the same hosts (and taps) share one bed. */
  hosts(config: C): string[];
  /** Tap devices its bed's private network needs (default none). */
  taps?(config: C): number;
  /** Its configuration under --reps N (the headline repetitions are RunContext.reps already). */
  withReps?(config: C, reps: number): C;
  run(ctx: RunContext, config: C): Promise<R>;
  /** Headline keys and metrics, from the result. */
  derive(result: R, config: C, sink: MetricSink): void;
  /** Its SVG charts; `all` is the whole run, for a chart that combines sections. */
  charts?(result: R, config: C, all: BenchResults): Chart[];
  /** Extra text after the table (profiles). */
  report?(result: R, config: C): string;
}

/** A section with its types erased, so that different ones fit in one registry. */
export interface RegisteredSection {
  name: string;
  about: string;
  config: { full: unknown; quick: unknown };
  hosts(config: unknown): string[];
  taps(config: unknown): number;
  withReps(config: unknown, reps: number): unknown;
  run(ctx: RunContext, config: unknown): Promise<unknown>;
  derive(result: unknown, config: unknown, sink: MetricSink): void;
  charts(result: unknown, config: unknown, all: BenchResults): Chart[];
  report(result: unknown, config: unknown): string;
}

/** Registers a section. The casts are safe: a section only ever gets back its own config and result. */
export function defineSection<C, R>(s: Section<C, R>): RegisteredSection {
  return {
    name: s.name,
    about: s.about,
    config: s.config,
    hosts: (c) => s.hosts(c as C),
    taps: (c) => (s.taps ? s.taps(c as C) : 0),
    withReps: (c, n) => (s.withReps ? s.withReps(c as C, n) : c),
    run: (ctx, c) => s.run(ctx, c as C),
    derive: (r, c, sink) => s.derive(r as R, c as C, sink),
    charts: (r, c, all) => (s.charts ? s.charts(r as R, c as C, all) : []),
    report: (r, c) => (s.report ? s.report(r as R, c as C) : ''),
  };
}
