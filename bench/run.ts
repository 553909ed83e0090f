// `npm run bench` (scripts/bench.sh → node dist/bench/run.js [--quick] [--only guest,ram,...] [--reps N] [--report FILE]):
// how close the workflows come to a hand-written QMP script (bench/direct-qmp.ts) and to what the machine
// can do (dd, QEMU into a discarding sink), measured side by side in one run on the same VMs. Every figure
// is a ratio or a distribution over repetitions; absolute times are kept in the JSON for reference only.
// The sections are listed in bench/sections/index.ts; each keeps its raw result under its own name.
// Output: a table on stdout, bench/results/latest.json (+ a timestamped copy), SVG charts in bench/results/.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { TestBed } from '../harness/testbed';
import { DirectProcesses } from './bed-ops';
import { filesystemOf, machineInfo } from './machine';
import { printTable } from './report';
import { MetricSink, type BenchConfig, type BenchResults } from './results';
import type { RegisteredSection } from './section';
import { SECTIONS } from './sections';
import { RESULTS, REPO, elapsedSec, say } from './util';

/** Every section's figures and charts from its saved result; prints the table. */
function render(results: BenchResults, sections: RegisteredSection[]): void {
  results.metrics = {};
  const sink = new MetricSink(results);
  const texts: string[] = [];
  const charts: string[] = [];
  mkdirSync(RESULTS, { recursive: true });
  for (const s of sections) {
    const result = results[s.name];
    if (result === undefined) continue;
    const config = results.config[s.name];
    s.derive(result, config, sink);
    for (const c of s.charts(result, config, results)) {
      writeFileSync(join(RESULTS, c.file), c.svg);
      charts.push(`bench/results/${c.file}`);
    }
    texts.push(s.report(result, config));
  }
  results.charts = charts;
  writeFileSync(join(RESULTS, 'latest.json'), JSON.stringify(results, null, 1));
  printTable(results, sink.headlines, texts);
}

function configFor(quick: boolean, reps: number | undefined): BenchConfig {
  const mode = quick ? 'quick' : 'full';
  const config: BenchConfig = { mode, reps: reps ?? 5 };
  for (const s of SECTIONS) {
    const own = structuredClone(quick ? s.config.quick : s.config.full);
    config[s.name] = reps === undefined ? own : s.withReps(own, reps);
  }
  return config;
}

/** Runs the sections, consecutive ones with the same host workers on one test bed. */
async function runSections(results: BenchResults, sections: RegisteredSection[], procs: DirectProcesses): Promise<void> {
  let bed: TestBed | undefined;
  let bedHosts = '';
  const stopBed = async () => {
    await procs.killAll();
    if (bed) await bed.stop().catch((err: unknown) => say(`(bed stop: ${(err as Error).message})`));
    bed = undefined;
  };
  const onSignal = () => {
    say('interrupted: cleaning up');
    void stopBed().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (const s of sections) {
      const config = results.config[s.name];
      const hosts = s.hosts(config);
      const taps = s.taps(config);
      if (!bed || bedHosts !== `${hosts.join(',')}/${taps}`) {
        await stopBed();
        say(`starting test bed: Temporal dev server, controller, host workers ${hosts.join(', ')}${taps ? `, ${taps} taps` : ''}`);
        bed = await TestBed.start({ hosts, ...(taps ? { taps } : {}) });
        bedHosts = `${hosts.join(',')}/${taps}`;
        results.machine.storeFilesystem = filesystemOf(bed.dir);
      }
      try {
        results[s.name] = await s.run({ bed, procs, reps: results.config.reps, mode: results.config.mode }, config);
      } catch (err) {
        const msg = `${s.name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
        results.errors.push(msg.split('\n').slice(0, 4).join(' | '));
        say(`FAILED ${msg}`);
        await procs.killAll();
        await bed.killAllVms();
      }
    }
  } finally {
    await stopBed();
  }
}

async function main(): Promise<void> {
  const names = SECTIONS.map((s) => s.name);
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      reps: { type: 'string' },
      /** Re-renders the table, metrics and charts of a saved results file (and makes it latest.json). */
      report: { type: 'string' },
    },
    strict: true,
  });
  if (values.report) {
    const saved = JSON.parse(readFileSync(values.report, 'utf8')) as BenchResults;
    render(saved, SECTIONS);
    process.stdout.write(`re-rendered ${values.report} → bench/results/latest.json; charts: ${saved.charts?.join(', ')}\nrun time of that run: ${saved.durationSec} s\n`);
    return;
  }
  let reps: number | undefined;
  if (values.reps) {
    reps = Number(values.reps);
    if (!Number.isInteger(reps) || reps < 1) throw new Error('--reps must be a positive integer');
  }
  const only = (values.only ?? names.join(',')).split(',').map((s) => s.trim());
  for (const s of only) if (!names.includes(s)) throw new Error(`--only: unknown section ${s} (sections: ${names.join(', ')})`);
  const sections = SECTIONS.filter((s) => only.includes(s.name));
  const config = configFor(values.quick ?? false, reps);
  mkdirSync(RESULTS, { recursive: true });

  const startedAt = new Date();
  say(`mode ${config.mode}, sections ${sections.map((s) => s.name).join(', ')}, ${config.reps} repetitions`);
  const info = await machineInfo(REPO);
  const results: BenchResults = { schema: 'vccr-bench/1', mode: config.mode, startedAt: startedAt.toISOString(), machine: info, qemu_version: info.qemu, config, metrics: {}, errors: [] };
  await runSections(results, sections, new DirectProcesses());

  results.finishedAt = new Date().toISOString();
  results.durationSec = elapsedSec();
  results.machine.loadAverageAtEnd = os.loadavg().map((x) => +x.toFixed(2));
  render(results, SECTIONS);
  const stamped = join(RESULTS, `${startedAt.toISOString().replace(/[:.]/g, '-')}-${config.mode}.json`);
  copyFileSync(join(RESULTS, 'latest.json'), stamped);
  process.stdout.write(`results: bench/results/latest.json (copy: ${stamped.slice(REPO.length + 1)})\ncharts: ${results.charts?.join(', ')}\nrun time: ${results.durationSec} s\n`);
  if (results.errors.length) process.exitCode = 1;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
