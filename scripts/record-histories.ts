// `npm run histories:record`: re-records every workflow history the replay test (test/replay.test.ts)
// replays, from real runs on a fresh test bed (dev server, controller and host workers, QEMU VMs). The
// histories are written to a temporary folder and replace test/histories/ only when every case passed.
//
// Adding a case is one entry in CASES. Cases run in order, on two clusters: `rec` (3 VMs with a disk each
// on hosts a and b) and `recfail` (1 VM with a disk whose new overlay cannot be created, so its checkpoint
// fails once the VM is paused and is undone).
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, TestBed, idleSpec } from '../harness/testbed';
import { HistoryRecorder, type RecordedHistory, type WorkflowInput, type WorkflowType } from '../harness/history-recorder';
import type { ClusterSpecInput } from '../common/spec';
import { storeLayout } from '../common/store-layout';

const MAIN = 'rec';
const FAILING = 'recfail';
const OUT = join(REPO_ROOT, 'test', 'histories');

/** The clusters the cases run on (their specs name the bed's folders). */
interface Clusters {
  main: ClusterSpecInput;
  failing: ClusterSpecInput;
}

interface HistoryCase {
  /** File name under test/histories/ (without .json). */
  name: string;
  /** One line for test/histories/README.md. */
  what: string;
  run(recorder: HistoryRecorder, clusters: Clusters): Promise<void>;
}

/** A case that runs one operation workflow and records its history. */
function operation<T extends WorkflowType>(
  name: string,
  what: string,
  type: T,
  input: (clusters: Clusters) => WorkflowInput<T>,
  expect: 'completed' | 'failed' = 'completed',
): HistoryCase {
  return { name, what, run: (r, clusters) => r.operation(name, type, input(clusters), expect) };
}

const CASES: HistoryCase[] = [
  operation('launch', 'launch 3 VMs with a disk each (vm0, vm2 on host a; vm1 on host b)', 'launchCluster', (c) => ({ spec: c.main })),
  operation('doctor', 'preflight of every host of `rec` (read-only: checks, clock samples, store markers)', 'doctorCluster', (c) => ({ spec: c.main })),
  operation('checkpoint-failed', 'checkpoint failing in capture (its disk overlay cannot be created): undone, VM resumed', 'checkpointCluster', (c) => {
    blockOverlay(c.failing, 'ck-failed');
    return { cluster: FAILING, checkpointId: 'ck-failed' };
  }, 'failed'),
  operation('checkpoint-stop', 'checkpoint in stop mode: capture (pause, freeze disks, start saves), saves joined (each VM resumed once saved), commit', 'checkpointCluster', () => ({ cluster: MAIN, checkpointId: 'ck-stop' })),
  operation('checkpoint-live', 'checkpoint in live mode: prepare, live writers, timed capture (stop, freeze, background snapshot), cut check, write, commit', 'checkpointCluster', () => ({
    cluster: MAIN,
    checkpointId: 'ck-live',
    mode: 'live' as const,
  })),
  { name: 'cluster-record-continued', what: 'the cluster record of `rec` up to a continue-as-new (launch, checkpoint)', run: (r) => r.rollover('cluster-record-continued', MAIN) },
  operation('inspect', 'inspect (every VM as its host sees it)', 'inspectCluster', () => ({ cluster: MAIN })),
  operation('list', 'list checkpoints', 'listCheckpoints', () => ({ cluster: MAIN })),
  operation('show', 'show a checkpoint: manifest and resume record', 'showCheckpoint', () => ({ cluster: MAIN, checkpointId: 'ck-stop' })),
  operation('verify', 'verify a checkpoint: re-hash every state file', 'verifyCheckpoint', () => ({ cluster: MAIN, checkpointId: 'ck-stop' })),
  operation('restart-remap', 'restart from ck-stop with host a remapped to b, forced (the old VMs still run)', 'restartCluster', () => ({
    cluster: MAIN,
    checkpointId: 'ck-stop',
    hostMap: { a: 'b' },
    force: true,
  })),
  operation('delete', 'delete ck-stop (disk layers the running VMs use are kept)', 'deleteCheckpoint', () => ({ cluster: MAIN, checkpointId: 'ck-stop' })),
  operation('protect-run', 'a scheduled protection run: checkpoint, verify, retention (keep last 1), merge, collect', 'protectCluster', () => ({ cluster: MAIN, retention: { keepLast: 1 } })),
  operation('recover', 'a recovery: forced restart from the newest checkpoint that verifies, recorded', 'recoverCluster', () => ({ cluster: MAIN })),
  { name: 'watch', what: 'the watch of `rec`: checks of a healthy cluster, then stopped', run: (r) => r.watch('watch', MAIN) },
  operation('shutdown', 'shutdown (every VM quits)', 'shutdownCluster', () => ({ cluster: MAIN })),
  { name: 'cluster-record', what: 'the cluster record of `rec` after the continue-as-new, still running', run: (r) => r.clusterRecord('cluster-record', MAIN) },
];

/**
 * A folder where the checkpoint's new disk overlay of every VM is to be created: QEMU cannot create the
 * overlay, so the checkpoint fails while the cluster is paused (a real failure, deterministic).
 */
function blockOverlay(spec: ClusterSpecInput, checkpointId: string): void {
  for (const vm of spec.vms) {
    for (const disk of vm.disks ?? []) mkdirSync(storeLayout.diskLayer(spec.store, spec.cluster, vm.name, disk.id, `after-${checkpointId}`), { recursive: true });
  }
}

function specs(bed: TestBed): Clusters {
  return {
    main: idleSpec(bed, MAIN, [
      { name: 'vm0', host: 'a' },
      { name: 'vm1', host: 'b' },
      { name: 'vm2', host: 'a' },
    ]),
    failing: idleSpec(bed, FAILING, [{ name: 'vm0', host: 'a' }]),
  };
}

function readme(recorded: RecordedHistory[]): string {
  const what = new Map(CASES.map((c) => [c.name, c.what]));
  return [
    '# Recorded workflow histories',
    '',
    'Written by `npm run histories:record` (scripts/record-histories.ts) from runs of the real system; replayed',
    "against today's workflow code by `test/replay.test.ts`. Do not edit by hand: re-record (see ARCHITECTURE.md,",
    '"Changing a workflow safely"). Event counts differ a little between recordings: how many progress signals',
    'the hosts send during a save or load depends on timing.',
    '',
    '| file | workflow | outcome | events | what |',
    '|---|---|---|---|---|',
    ...recorded.map((h) => `| ${h.name}.json | ${h.workflowType} | ${h.outcome} | ${h.events} | ${what.get(h.name) ?? ''} |`),
    '',
  ].join('\n');
}

/** Replaces the *.json files and README.md of test/histories/ with the new recording. */
function publish(from: string): void {
  mkdirSync(OUT, { recursive: true });
  for (const f of readdirSync(OUT)) if (f.endsWith('.json') || f === 'README.md') rmSync(join(OUT, f));
  for (const f of readdirSync(from)) renameSync(join(from, f), join(OUT, f));
}

async function main(): Promise<void> {
  const started = Date.now();
  const bed = await TestBed.start({ hosts: ['a', 'b'] });
  const tmp = mkdtempSync(join(bed.dir, 'histories-'));
  try {
    const clusters = specs(bed);
    await bed.vccr.up(clusters.failing);
    const recorder = new HistoryRecorder(bed, tmp);
    for (const c of CASES) {
      const t = Date.now();
      await c.run(recorder, clusters);
      process.stdout.write(`recorded ${c.name} (${Date.now() - t} ms)\n`);
    }
    await bed.vccr.down(FAILING, { kill: true });
    writeFileSync(join(tmp, 'README.md'), readme(recorder.recorded));
    publish(tmp);
    process.stdout.write(`${recorder.recorded.length} histories in ${OUT} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
  } finally {
    await bed.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`recording failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
