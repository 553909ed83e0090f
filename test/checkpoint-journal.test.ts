// Disk state matches memory state after a restart. A VM appends checksummed, numbered records to its
// virtio disk (fdatasync each, re-reading the previous record and the next slot before every write, so it
// notices a disk that runs behind or ahead of its memory). We checkpoint it, let it write on, kill it and
// restart: it must continue exactly after the record it had written at the checkpoint, and the disk must
// verify. What was written after the checkpoint is gone: the checkpoint's frozen disk holds exactly the
// records up to the checkpoint.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { TestBed, guestImageDir } from '../harness/testbed';
import { readConsole, waitForConsole } from '../harness/console';
import type { ClusterSpecInput } from '../common/spec';
import { consoleAtPause, sinceLastRestore, sinceRestoreFrom } from '../harness/ring';
import { journalErrors, journalWrites, verifyJournalDisk } from './helpers/journal';

const CLUSTER = 'journal';
let bed: TestBed;
let consolePath: string;

function spec(): ClusterSpecInput {
  const image = guestImageDir();
  return {
    cluster: CLUSTER,
    store: bed.store,
    hosts: { a: {} },
    vms: [
      {
        name: 'writer',
        host: 'a',
        memoryMiB: 128,
        boot: {
          kernel: join(image, 'vmlinuz'),
          initrd: join(image, 'initrd.img'),
          append: 'console=ttyS0 quiet panic=-1 vccr.run=journal vccr.args=write,--dev,/dev/vda,--delay-ms,20',
        },
        disks: [{ id: 'data', image: join(bed.dir, 'journal-base.raw'), format: 'raw' }],
      },
    ],
  };
}

const wrote = journalWrites;
const verifyChain = (top: string) => verifyJournalDisk(bed, top);

before(async () => {
  bed = await TestBed.start({ hosts: ['a'] });
  execFileSync('qemu-img', ['create', '-q', '-f', 'raw', join(bed.dir, 'journal-base.raw'), '4M']);
  await bed.vccr.up(spec());
  consolePath = bed.consoleLog('a', CLUSTER, 'writer');
  await waitForConsole(consolePath, /^JOURNAL WROTE seq=30$/m, { timeoutMs: 120_000 });
});

after(async () => {
  await bed?.stop();
});

test('checkpoint, keep writing, kill, restart: the journal continues exactly from the checkpoint and verifies', { timeout: 240_000 }, async (t) => {
  const result = await bed.vccr.checkpoint(CLUSTER);
  assert.ok('checkpointId' in result && 'downtimeMs' in result);
  const { manifest } = await bed.vccr.checkpoints.show(CLUSTER, result.checkpointId);
  const vm = manifest.vms[0];
  assert.ok(vm?.console && vm.disks[0], 'the manifest records the console and the frozen disk');
  const atCheckpoint = wrote(consoleAtPause(vm).text).at(-1) ?? -1;
  t.diagnostic(`last record reported before the checkpoint: ${atCheckpoint}; frozen layer ${vm.disks[0].frozen}`);

  // The VM goes on writing after the checkpoint...
  const resumedFrom = readConsole(consolePath).length;
  await waitForConsole(consolePath, new RegExp(`^JOURNAL WROTE seq=${atCheckpoint + 40}$`, 'm'), { from: resumedFrom, timeoutMs: 60_000 });

  // ...and the checkpoint's frozen disk does not see any of that.
  const frozen = verifyChain(vm.disks[0].frozen);
  assert.ok(frozen.ok, `frozen disk verifies: ${frozen.output}`);
  assert.ok(
    frozen.records === atCheckpoint + 1 || frozen.records === atCheckpoint + 2,
    `frozen disk holds the records up to the checkpoint (${frozen.records} records, last reported ${atCheckpoint})`,
  );

  assert.equal((await bed.killAllVms()).length, 1);
  await bed.vccr.restart(CLUSTER, { checkpointId: result.checkpointId });
  const deadline = Date.now() + 60_000;
  let after = sinceRestoreFrom(manifest, vm.name, consolePath);
  while (wrote(after).length < 20 && journalErrors(after).length === 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    after = sinceRestoreFrom(manifest, vm.name, consolePath);
  }
  assert.deepEqual(journalErrors(after), [], 'no disk-behind/ahead-of-memory error after the restore');
  const seqs = wrote(after);
  assert.ok(seqs.length >= 20, `the writer goes on (${seqs.length} records)`);
  assert.equal(seqs[0], atCheckpoint + 1, 'the first record after the restore follows the last one before the checkpoint');
  seqs.forEach((s, i) => assert.equal(s, atCheckpoint + 1 + i, 'records stay contiguous'));

  // The running VM's disk (its new chain) verifies too, with every record written since.
  await bed.vccr.down(CLUSTER);
  const state = await bed.vccr.clusterState(CLUSTER);
  assert.equal(state?.status, 'down');
  const live = JSON.parse(execFileSync('cat', [join(bed.store, CLUSTER, '_disks', 'writer', 'data', 'chain.json')], { encoding: 'utf8' })) as { active: string; backing: string[] };
  assert.equal(live.backing[0], vm.disks[0].frozen, 'the restored VM ran on a fresh overlay over the frozen layer');
  const final = verifyChain(live.active);
  assert.ok(final.ok, `disk verifies after the restored run: ${final.output}`);
  assert.ok(final.records >= (seqs.at(-1) ?? 0) + 1, `all ${seqs.length} new records are on disk (${final.records})`);
  // The frozen layer itself was never written by the restored VM.
  assert.equal(verifyChain(vm.disks[0].frozen).records, frozen.records);
});

test('deleting checkpoints never breaks another checkpoint or the running VM (shared disk layers)', { timeout: 300_000 }, async () => {
  // The first test left the cluster down: bring it back from its checkpoint.
  await bed.vccr.restart(CLUSTER, { force: true });
  const stillWriting = async (from: number) => {
    await waitForConsole(consolePath, /(?:^JOURNAL WROTE seq=\d+\n){5}/m, { from, timeoutMs: 60_000 });
    assert.deepEqual(journalErrors(readConsole(consolePath).slice(from)), [], 'the journal keeps writing without error');
  };
  const c1 = await bed.vccr.checkpoint(CLUSTER, { checkpointId: 'layers-1' });
  await stillWriting(readConsole(consolePath).length);
  const c2 = await bed.vccr.checkpoint(CLUSTER, { checkpointId: 'layers-2' });
  assert.ok('checkpointId' in c1 && 'checkpointId' in c2);
  const m2 = (await bed.vccr.checkpoints.show(CLUSTER, 'layers-2')).manifest;
  const m1 = (await bed.vccr.checkpoints.show(CLUSTER, 'layers-1')).manifest;
  assert.equal(m2.vms[0]?.disks[0]?.backing[0], m1.vms[0]?.disks[0]?.frozen, 'checkpoint 2 is layered on checkpoint 1');

  // Deleting the older one keeps what the newer one and the running VM stand on.
  await bed.vccr.checkpoints.delete(CLUSTER, 'layers-1');
  assert.equal((await bed.vccr.checkpoints.verify(CLUSTER, 'layers-2')).ok, true);
  await stillWriting(readConsole(consolePath).length);

  // Restoring the newer one works; then deleting it while the restored VM runs on its layer is safe too.
  await bed.killAllVms();
  await bed.vccr.restart(CLUSTER, { checkpointId: 'layers-2' });
  const restored = sinceLastRestore(consolePath, 'layers-2');
  assert.deepEqual(journalErrors(restored), []);
  const deleted = await bed.vccr.checkpoints.delete(CLUSTER, 'layers-2');
  const chainNow = JSON.parse(execFileSync('cat', [join(bed.store, CLUSTER, '_disks', 'writer', 'data', 'chain.json')], { encoding: 'utf8' })) as { active: string; backing: string[] };
  const removedLive = deleted.removedLayers.filter((l) => l === chainNow.active || chainNow.backing.includes(l));
  assert.deepEqual(removedLive, [], 'no layer of the running VM is removed');
  await stillWriting(readConsole(consolePath).length);
  await bed.vccr.down(CLUSTER);
  const live = JSON.parse(execFileSync('cat', [join(bed.store, CLUSTER, '_disks', 'writer', 'data', 'chain.json')], { encoding: 'utf8' })) as { active: string };
  const final = verifyChain(live.active);
  assert.ok(final.ok, `the disk of the VM that outlived both checkpoints verifies: ${final.output}`);
});
