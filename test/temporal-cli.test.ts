// The `temporal workflow start` path, with the real Temporal CLI, exactly as the README shows it: the
// commands between the readme-test markers are run as written (TEMPORAL_ADDRESS points at the test's
// dev server), against a real 3-VM ring.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { TestBed, ringSpec } from '../harness/testbed';
import { temporalCliPath } from '../harness/dev-server';
import { waitForConsole } from '../harness/console';
import { assertRingContinued } from './helpers/ring-check';
import { readmeBlock } from './helpers/readme';

let bed: TestBed;
const VMS = [
  { name: 'vm0', host: 'a' },
  { name: 'vm1', host: 'b' },
  { name: 'vm2', host: 'a' },
];

before(async () => (bed = await TestBed.start({ hosts: ['a', 'b'], taps: 3 })));
after(() => bed?.stop());

test('the README`s temporal workflow start commands launch, checkpoint and restart a cluster', { timeout: 300_000 }, async (t) => {
  const script = readmeBlock('temporal-cli');
  const cwd = bed.dir;
  writeFileSync(join(cwd, 'launch-input.json'), JSON.stringify({ spec: ringSpec(bed, 'demo', VMS) }));
  // Launch first (the block's first two commands), wait for tokens, then run the rest: the checkpoint
  // must happen while the ring runs.
  const lines = script.split('\n');
  const cut = lines.findIndex((l) => l.includes('--type checkpointCluster'));
  const run = (text: string) =>
    execFileSync('bash', ['-euo', 'pipefail', '-c', text], {
      cwd,
      encoding: 'utf8',
      env: { ...process.env, TEMPORAL_ADDRESS: bed.server.address, PATH: `${dirname(temporalCliPath())}:${process.env.PATH ?? ''}` },
    });
  const launchOut = run(lines.slice(0, cut).join('\n'));
  t.diagnostic(launchOut.split('\n').slice(-6).join(' | '));
  for (const vm of VMS) await waitForConsole(bed.consoleLog(vm.host, 'demo', vm.name), /(?:^RING TOKEN .*\n){5}/m, { timeoutMs: 120_000 });

  const out = run(lines.slice(cut).join('\n'));
  assert.match(out, /vccr-demo-checkpoint-ck1/);
  assert.match(out, /"phase"/, 'the progress query answered');
  assert.match(out, /vccr-demo-restart-1/);
  assert.match(out, /vccr-cluster-demo/, 'the search-attribute query lists the cluster record');

  const checkpoint = await (await bed.temporal()).workflow.getHandle('vccr-demo-checkpoint-ck1').result();
  assert.equal((checkpoint as { checkpointId: string }).checkpointId, 'ck1');
  const { manifest } = await bed.vccr.checkpoints.show('demo', 'ck1');
  // The restart (forced: the VMs were still running) brought the ring back from ck1.
  await assertRingContinued(bed, 'demo', manifest, Object.fromEntries(VMS.map((v) => [v.name, v.host])));
});

test('bad JSON input through temporal workflow start fails the workflow with a one-line reason', { timeout: 60_000 }, async () => {
  const env = { ...process.env, TEMPORAL_ADDRESS: bed.server.address };
  const cli = temporalCliPath();
  execFileSync(cli, ['workflow', 'start', '--task-queue', 'vccr-controller', '--type', 'checkpointCluster', '--workflow-id', 'bad-1', '--input', '{"cluster": "../etc", "extra": 1}'], { env });
  let failure = '';
  try {
    execFileSync(cli, ['workflow', 'result', '--workflow-id', 'bad-1'], { env, encoding: 'utf8' });
  } catch (err) {
    failure = String((err as { stdout?: string }).stdout ?? '') + String((err as { stderr?: string }).stderr ?? '');
  }
  assert.match(failure, /invalid checkpointCluster input: cluster: must be 1-32 characters/);
  assert.match(failure, /extra/);
  assert.doesNotMatch(failure, /at .*\.js:\d+/, 'no stack trace');
});
