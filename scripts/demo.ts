// The demo (README command 1): a 4-VM token ring across two host workers is checkpointed while tokens
// flow, every VM is killed, and the cluster is restarted from the checkpoint — the ring carries on from
// the exact token. Everything runs on this machine: the Temporal dev server (SQLite, Web UI), one
// controller worker and two host workers as separate processes. It cleans up after itself.
import { createInterface } from 'node:readline';
import { TestBed, ringSpec } from '../harness/testbed';
import { freePort } from '../harness/ports';
import { readConsole, ringErrors, ringTokens, waitForConsole } from '../harness/console';
import { describeCheckpoint, describeRestart, ProgressPrinter, table } from '../client/render';
import { tokensAtCheckpoint, sinceRestoreFrom } from '../harness/ring';
import type { CheckpointResult, RestartResult } from '../client';
import { checkpointWorkflowId, clusterWorkflowId, operationWorkflowId } from '../common/ids';

const CLUSTER = 'demo';
const VMS = [
  { name: 'vm0', host: 'a' },
  { name: 'vm1', host: 'b' },
  { name: 'vm2', host: 'a' },
  { name: 'vm3', host: 'b' },
];

const say = (text: string) => process.stdout.write(`${text}\n`);
const step = (text: string) => say(`\n▶ ${text}`);

async function main(): Promise<void> {
  const keep = process.argv.includes('--keep');
  step('starting the Temporal dev server, a controller worker and host workers a and b');
  const bed = await TestBed.start({ hosts: ['a', 'b'], taps: VMS.length, uiPort: await pickUiPort(8233) });
  const stop = async () => {
    step('cleaning up (VMs, workers, dev server, network namespace, files)');
    await bed.stop();
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(130)));
  try {
    say(`  Temporal: ${bed.server.address}   Web UI: ${bed.server.uiUrl}   work folder: ${bed.dir}`);

    step(`launching a ${VMS.length}-VM token ring: ${VMS.map((v) => `${v.name}@${v.host}`).join(', ')}`);
    const progress = new ProgressPrinter(process.stdout);
    await bed.vccr.up(ringSpec(bed, CLUSTER, VMS), { onProgress: progress.update });
    for (const vm of VMS) await waitForConsole(bed.consoleLog(vm.host, CLUSTER, vm.name), /(?:^RING TOKEN .*\n){10}/m, { timeoutMs: 180_000 });
    say(`  tokens are flowing: ${VMS.map((vm) => `${vm.name} at ${lastToken(bed, vm.host, vm.name)}`).join(', ')}`);

    step('checkpointing the whole cluster while tokens flow');
    const ckpt = (await bed.vccr.checkpoint(CLUSTER, { onProgress: new ProgressPrinter(process.stdout).update })) as CheckpointResult;
    say(describeCheckpoint(ckpt));
    const { manifest } = await bed.vccr.checkpoints.show(CLUSTER, ckpt.checkpointId);
    const atCheckpoint = tokensAtCheckpoint(manifest);

    step('the ring keeps running after the checkpoint...');
    await sleep(3000);
    const beforeKill = new Map(VMS.map((vm) => [vm.name, lastToken(bed, vm.host, vm.name)]));
    say(`  ${VMS.map((vm) => `${vm.name} at ${beforeKill.get(vm.name)}`).join(', ')}`);

    step('killing every VM (SIGKILL), as a crash of the whole cluster would');
    const killed = await bed.killAllVms();
    say(`  killed ${killed.join(', ')}`);
    const status = await bed.vccr.status(CLUSTER);
    say(`  status: ${status.vms.map((v) => `${v.name} ${v.alive ? 'alive' : 'dead'}`).join(', ')}`);

    step(`restarting the cluster from checkpoint ${ckpt.checkpointId}`);
    const restart = (await bed.vccr.restart(CLUSTER, { checkpointId: ckpt.checkpointId, onProgress: new ProgressPrinter(process.stdout).update })) as RestartResult;
    say(describeRestart(restart));
    for (const vm of VMS) {
      const path = bed.consoleLog(vm.host, CLUSTER, vm.name);
      await waitForConsole(path, /(?:^RING TOKEN .*\n){5}/m, { from: readConsole(path).lastIndexOf('=== vccr: restoring'), timeoutMs: 60_000 });
    }

    step('the ring continues from the exact token it had at the checkpoint');
    const rows = [['VM', 'HOST', 'TOKEN AT CHECKPOINT', 'REACHED BEFORE KILL (lost)', 'FIRST TOKEN AFTER RESTART', 'EXACT SUCCESSOR?', 'ERRORS']];
    let allGood = true;
    for (const vm of VMS) {
      const after = sinceRestoreFrom(manifest, vm.name, bed.consoleLog(vm.host, CLUSTER, vm.name));
      const first = ringTokens(after)[0]?.value;
      const expected = (atCheckpoint.get(vm.name) ?? 0n) + BigInt(VMS.length);
      const errors = ringErrors(after);
      const ok = first === expected && errors.length === 0 && !/^RING (CONN|READY)/m.test(after);
      allGood &&= ok;
      rows.push([vm.name, vm.host, String(atCheckpoint.get(vm.name)), beforeKill.get(vm.name) ?? '-', String(first ?? '-'), ok ? 'yes' : 'NO', errors.join('; ') || 'none']);
    }
    say(table(rows).replace(/^/gm, '  '));
    say(allGood ? '  ✔ same TCP connections, no token duplicated or skipped' : '  ✘ the ring did NOT continue correctly');

    step('where to look');
    say(`  Web UI: ${bed.server.uiUrl}/namespaces/default/workflows  (filter: VccrCluster = "${CLUSTER}")`);
    say(`  workflows: ${[clusterWorkflowId(CLUSTER), checkpointWorkflowId(CLUSTER, ckpt.checkpointId), operationWorkflowId(CLUSTER, 'restart', '...')].join(', ')}`);
    if (keep || process.stdin.isTTY) {
      await new Promise<void>((resolve) => {
        say('\n  Everything is still running: browse the Web UI, try `bin/vccr --address ' + bed.server.address + ' status demo`.');
        say('  Press Enter to clean up and exit.');
        const rl = createInterface({ input: process.stdin });
        rl.once('line', () => {
          rl.close();
          resolve();
        });
      });
    }
    await bed.vccr.down(CLUSTER);
    if (!allGood) process.exitCode = 1;
  } finally {
    await stop();
  }
}

function lastToken(bed: TestBed, host: string, vm: string): string {
  return String(ringTokens(readConsole(bed.consoleLog(host, CLUSTER, vm))).at(-1)?.value ?? '-');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The dev server's usual UI port if it is free, else any free one. */
async function pickUiPort(preferred: number): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => void freePort().then(resolve));
    s.listen(preferred, '127.0.0.1', () => s.close(() => resolve(preferred)));
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
