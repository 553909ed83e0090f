// Opt-in state compression (`stateCompression: zstd`) through the real workflows: the manifest records
// the codec and the stream's size, the files are smaller than the streams, `verify` checks the files as
// they are on disk, and a restart decompresses them into the VMs so exactly that the token ring carries on
// from the token it had.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { TestBed } from '../harness/testbed';
import { assertRingContinued } from './helpers/ring-check';
import { placementOf, RING2, startRingBed } from './helpers/ring-bed';

// Two nodes, one per host worker: the smallest ring whose token crosses hosts.
const CLUSTER = 'zring';
const VMS = RING2;
const HOME = placementOf(VMS);

let bed: TestBed;
before(async () => (bed = await startRingBed(CLUSTER, VMS, { spec: { stateCompression: 'zstd' } })));
after(() => bed?.stop());

test('a compressed checkpoint records its codec, verifies, and restores the ring exactly', { timeout: 300_000 }, async () => {
  const result = await bed.vccr.checkpoint(CLUSTER);
  assert.ok('downtimeMs' in result, 'checkpoint completed');
  const { manifest } = await bed.vccr.checkpoints.show(CLUSTER, result.checkpointId);
  for (const vm of manifest.vms) {
    assert.equal(vm.state.codec, 'zstd', `${vm.name}: codec recorded`);
    const file = join(bed.store, CLUSTER, result.checkpointId, vm.state.file);
    assert.equal(statSync(file).size, vm.state.size, `${vm.name}: size is the file's`);
    assert.ok(vm.state.rawSize && vm.state.size < vm.state.rawSize / 1.5, `${vm.name}: ${vm.state.size} bytes on disk for a ${vm.state.rawSize}-byte stream`);
    // The first frame header: the raw length of the first slot, then a zstd frame (magic 28 b5 2f fd).
    assert.equal(readFileSync(file).subarray(8, 12).toString('hex'), '28b52ffd', `${vm.name}: starts with a zstd frame`);
  }
  assert.equal((await bed.vccr.checkpoints.verify(CLUSTER, result.checkpointId)).ok, true, 'verify checks the compressed files');

  const killed = await bed.killAllVms();
  assert.equal(killed.length, VMS.length);
  const restarted = await bed.vccr.restart(CLUSTER, { checkpointId: result.checkpointId });
  assert.ok('restoreMs' in restarted, 'restart completed');
  await assertRingContinued(bed, CLUSTER, manifest, HOME);
});
