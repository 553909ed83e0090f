// Summarises a fault-suite run (the JSON lines test/faults/*.test.ts append) as the table RELIABILITY.md
// shows: per case, runs that passed every end-state check, outcomes, and the longest pause seen.
// A run that fails a check throws before it is recorded, so a case with fewer records than the runs asked
// for (VCCR_FAULT_RUNS, default 5) had failures, and says so.
//   node dist/scripts/fault-report.js .cache/fault-report.jsonl
import { readFileSync } from 'node:fs';
import { z } from 'zod';

const recordSchema = z.object({
  suite: z.string(),
  case: z.string(),
  run: z.number(),
  outcome: z.string(),
  maxPausedMs: z.number(),
  ms: z.number(),
  ok: z.boolean(),
  asked: z.number().optional(),
});

function main(): void {
  const path = process.argv[2];
  if (!path) throw new Error('usage: fault-report <report.jsonl>');
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    process.stdout.write('no fault-suite results\n');
    return;
  }
  const records = text
    .split('\n')
    .filter(Boolean)
    .map((l) => recordSchema.safeParse(JSON.parse(l)))
    .filter((r) => r.success)
    .map((r) => r.data);
  const cases = new Map<string, typeof records>();
  for (const r of records) {
    const key = `${r.suite} | ${r.case}`;
    cases.set(key, [...(cases.get(key) ?? []), r]);
  }
  const asked = Math.max(1, Number(process.env.VCCR_FAULT_RUNS ?? 5) || 5);
  const rows = ['| suite | case | runs passed | outcomes | lost | longest pause | median run |', '|---|---|---|---|---|---|---|'];
  for (const [key, rs] of cases) {
    const outcomes = new Map<string, number>();
    for (const r of rs) outcomes.set(r.outcome, (outcomes.get(r.outcome) ?? 0) + 1);
    const maxPause = Math.max(...rs.map((r) => r.maxPausedMs));
    const durations = rs.map((r) => r.ms).sort((a, b) => a - b);
    const median = durations[Math.floor(durations.length / 2)] ?? 0;
    const [suite, name] = key.split(' | ');
    const passed = rs.filter((r) => r.ok).length;
    const runs = Math.max(rs.length, rs[0]?.asked ?? asked);
    // Every recorded run passed all end-state checks: nothing of the cluster or the store was lost.
    const lost = passed === runs ? 'nothing' : `${runs - passed} run(s) failed a check`;
    rows.push(
      `| ${suite} | ${name} | ${passed}/${runs} | ${[...outcomes].map(([o, n]) => `${n}× ${o}`).join(', ')} | ${lost} | ${maxPause ? `${(maxPause / 1000).toFixed(1)} s` : '–'} | ${(median / 1000).toFixed(1)} s |`,
    );
  }
  process.stdout.write(`${rows.join('\n')}\n`);
}

main();
