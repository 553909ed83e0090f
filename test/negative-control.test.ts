// Negative control: the detectors must catch an inconsistent checkpoint, or the positive tests prove
// nothing. Here each VM of a running ring is saved at a different moment (stop → save → cont, one VM
// after another, tokens flowing in between), bypassing the protocol's barriers; the files are committed
// as a checkpoint with the same manifest format and restored through the normal restart workflow. The
// restored ring must report an error (lost token → stall, a desynchronised TCP stream → reset/eof,
// or a duplicated/skipped token), whereas the coordinated checkpoint of the same cluster restores cleanly.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestBed } from '../harness/testbed';
import { readConsole, ringErrors, ringTokens, waitForConsole } from '../harness/console';
import { QmpClient } from '../activities/qmp';
import { StateReceiver } from '../activities/host/transfer';
import { manifestSchema, type Manifest } from '../common/manifest';
import { sleep } from '../node/proc';
import { assertRingContinued, sinceLastRestore } from './helpers/ring-check';
import { placementOf, RING3, startRingBed } from './helpers/ring-bed';

const CLUSTER = 'negative';
const VMS = RING3;
const HOME = placementOf(VMS);
let bed: TestBed;
let coordinated: Manifest;

before(async () => {
  bed = await startRingBed(CLUSTER, VMS, { stallSec: 5 });
  const result = await bed.vccr.checkpoint(CLUSTER, { checkpointId: 'coordinated' });
  assert.ok('downtimeMs' in result);
  coordinated = (await bed.vccr.checkpoints.show(CLUSTER, 'coordinated')).manifest;
});

after(() => bed?.stop());

/** Saves one VM on its own, as a careless script would: stop, migrate to a file, cont. */
async function saveAlone(host: string, vm: string, file: string): Promise<{ size: number; sha256: string }> {
  // The guard monitor: the host worker holds the main one.
  const qmp = await QmpClient.connect(bed.vmRecord(host, CLUSTER, vm).guardSocket, { connectTimeoutMs: 5000 });
  try {
    await qmp.command('stop');
    await qmp.command('migrate-set-parameters', { 'max-bandwidth': 2 ** 40 });
    const socket = join(bed.dir, `${vm}-uncoordinated.sock`);
    const receiver = new StateReceiver(socket, file);
    await receiver.start();
    await qmp.command('migrate', { uri: `unix:${socket}` });
    const saved = await receiver.done;
    for (let i = 0; i < 100; i++) {
      const { status } = await qmp.command('query-migrate');
      if (status === 'completed') break;
      if (status === 'failed') throw new Error(`saving ${vm} failed`);
      await sleep(50);
    }
    await qmp.command('cont');
    return saved;
  } finally {
    await qmp.close();
  }
}

test('the coordinated checkpoint restores cleanly (positive control)', { timeout: 180_000 }, async () => {
  await bed.killAllVms();
  await bed.vccr.restart(CLUSTER, { checkpointId: 'coordinated' });
  await assertRingContinued(bed, CLUSTER, coordinated, HOME);
});

test('an uncoordinated checkpoint (VMs saved at different moments) is caught by the ring detectors', { timeout: 240_000 }, async (t) => {
  const id = 'uncoordinated';
  const dir = join(bed.store, CLUSTER, id);
  mkdirSync(dir, { mode: 0o700 });
  const vms: Manifest['vms'] = [];
  for (const template of coordinated.vms) {
    const host = HOME[template.name] ?? '';
    const path = bed.consoleLog(host, CLUSTER, template.name);
    const before = ringTokens(readConsole(path)).length;
    const saved = await saveAlone(host, template.name, join(dir, `${template.name}.state`));
    vms.push({ ...template, state: { file: `${template.name}.state`, size: saved.size, sha256: saved.sha256 } });
    // Tokens keep flowing between one VM's save and the next's.
    await waitForConsole(path, new RegExp(`(?:^RING TOKEN .*\\n){${before + 15}}`, 'm'), { timeoutMs: 60_000 });
  }
  const manifest = manifestSchema.parse({ ...coordinated, checkpointId: id, workflowId: 'uncoordinated-by-hand', runId: 'by-hand', vms, totalBytes: vms.reduce((s, v) => s + v.state.size, 0) });
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest), { mode: 0o600 });

  await bed.killAllVms();
  await bed.vccr.restart(CLUSTER, { checkpointId: id });
  const deadline = Date.now() + 90_000;
  let errors: string[] = [];
  while (Date.now() < deadline) {
    errors = VMS.flatMap((vm) => ringErrors(sinceLastRestore(bed.consoleLog(vm.host, CLUSTER, vm.name), id)).map((e) => `${vm.name}: ${e}`));
    if (errors.length) break;
    await sleep(250);
  }
  t.diagnostic(`detected: ${errors.join(' | ')}`);
  assert.ok(errors.length > 0, 'the ring reports the inconsistency (stall, reset, duplicate or skipped token)');
});
