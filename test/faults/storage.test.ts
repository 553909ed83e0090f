// Fault case 5: storage. A store too small (refused before pausing), a store that fills up during the
// save (ENOSPC), a read-only store: the checkpoint fails cleanly with the reason and the VM runs on. A
// committed checkpoint damaged afterwards (state file corrupted or deleted, manifest edited or pointing
// outside the store): restart refuses before touching anything, naming the bad file.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, openSync, readFileSync, readdirSync, rmSync, statSync, closeSync, writeSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestBed, guestImageDir } from '../../harness/testbed';
import { Tmpfs } from '../../harness/tmpfs';
import { waitForConsole } from '../../harness/console';
import { sleep } from '../../node/proc';
import type { ClusterSpecInput } from '../../common/spec';
import { CHECKPOINT_PHASES, random, report, RUNS, takeTheSpace } from './fault-bed';
import { outcomeOf, waitForPhase } from './waits';

let bed: TestBed;
const mounts: Tmpfs[] = [];

function oneVm(cluster: string, store: string, memoryMiB: number, fillMiB: number, withDisk = false): ClusterSpecInput {
  const image = guestImageDir();
  const base = join(bed.dir, 'disk-base.raw');
  if (withDisk && !existsSync(base)) execFileSync('qemu-img', ['create', '-q', '-f', 'raw', base, '8M']);
  return {
    cluster,
    store,
    pauseBoundSeconds: 30,
    hosts: { a: {} },
    vms: [
      {
        name: 'vm0',
        host: 'a',
        memoryMiB,
        boot: { kernel: join(image, 'vmlinuz'), initrd: join(image, 'initrd.img'), append: `console=ttyS0 quiet panic=-1 init_on_free=1 vccr.run=memfill vccr.args=--mb,${fillMiB}` },
        ...(withDisk ? { disks: [{ id: 'data', image: base, format: 'raw' as const }] } : {}),
      },
    ],
  };
}

async function up(spec: ClusterSpecInput): Promise<void> {
  await bed.vccr.up(spec);
  await waitForConsole(bed.consoleLog('a', spec.cluster, 'vm0'), /^MEMFILL READY/m, { timeoutMs: 120_000 });
}

/** The VM still runs as the same process and its memory self-check holds. */
async function assertUntouched(cluster: string, pid: number): Promise<void> {
  const status = await bed.vccr.status(cluster);
  assert.deepEqual(status.vms.map((v) => [v.name, v.alive, v.qmpStatus, v.pid]), [['vm0', true, 'running', pid]]);
  const log = bed.consoleLog('a', cluster, 'vm0');
  const before = readFileSync(log, 'utf8').length;
  await waitForConsole(log, /^MEMFILL ALIVE/m, { from: before, timeoutMs: 30_000 });
  assert.doesNotMatch(readFileSync(log, 'utf8'), /MEMFILL ERROR/);
}

function noCheckpointFolders(store: string, cluster: string): void {
  const dir = join(store, cluster);
  const folders = existsSync(dir) ? readdirSync(dir).filter((e) => !e.startsWith('_')) : [];
  assert.deepEqual(folders, [], 'no checkpoint folder left behind');
}

before(async () => {
  bed = await TestBed.start({ hosts: ['a'] });
});
after(async () => {
  // The mounts live inside the bed's folder: unmount them before it is removed.
  for (const m of mounts) m.unmount();
  await bed?.stop();
});

describe('checkpoint into a bad store fails cleanly', () => {
  test('store too small: refused before anything is paused', { timeout: RUNS * 60_000 }, async (t) => {
    const tmp = Tmpfs.mount(join(bed.dir, 'small'), 48);
    mounts.push(tmp);
    await up(oneVm('small', tmp.path, 128, 16));
    const pid = bed.vmRecord('a', 'small', 'vm0').pid;
    for (let run = 1; run <= RUNS; run++) {
      const started = Date.now();
      const r = await bed.vccr.checkpoint('small').then(
        () => 'completed',
        (err: Error) => err.message,
      );
      assert.match(r, /failed in prepare: not enough room in .*small/);
      noCheckpointFolders(tmp.path, 'small');
      await assertUntouched('small', pid);
      t.diagnostic(`run ${run}: ${r}`);
      report({ suite: 'storage', case: 'store too small', run, outcome: 'failed cleanly', maxPausedMs: 0, ms: Date.now() - started, detail: r, ok: true });
    }
  });

  test('store fills up during the save (ENOSPC): partial files removed, VM resumed', { timeout: RUNS * 90_000 }, async (t) => {
    const tmp = Tmpfs.mount(join(bed.dir, 'filling'), 256);
    mounts.push(tmp);
    await up(oneVm('filling', tmp.path, 192, 96));
    const pid = bed.vmRecord('a', 'filling', 'vm0').pid;
    for (let run = 1; run <= RUNS; run++) {
      const started = Date.now();
      const id = `fill-${run}`;
      const r = await bed.vccr.checkpoint('filling', { checkpointId: id, noWait: true });
      assert.ok('workflowId' in r);
      await waitForPhase(bed, r.workflowId, CHECKPOINT_PHASES, 'capture');
      await sleep(random(0, 100));
      // Something else takes the space: leave about 20 MiB, less than the VM's state.
      takeTheSpace(tmp.path, join(tmp.path, 'ballast'));
      const outcome = await outcomeOf(bed, r.workflowId);
      rmSync(join(tmp.path, 'ballast'));
      assert.match(outcome, /failed: checkpoint fill-\d of cluster filling failed in save: .*(ENOSPC|no space)/i);
      noCheckpointFolders(tmp.path, 'filling');
      assert.ok(existsSync(join(tmp.path, 'filling', '_failed', `${id}.json`)), 'the failure is recorded');
      await assertUntouched('filling', pid);
      t.diagnostic(`run ${run}: ${outcome.slice(0, 220)}`);
      report({ suite: 'storage', case: 'store fills up during save', run, outcome: 'failed cleanly', maxPausedMs: 0, ms: Date.now() - started, detail: outcome, ok: true });
    }
  });

  test('read-only store: refused with the reason, VM untouched', { timeout: RUNS * 60_000 }, async (t) => {
    const tmp = Tmpfs.mount(join(bed.dir, 'readonly'), 16, { readOnly: true });
    mounts.push(tmp);
    await up(oneVm('readonly', tmp.path, 128, 16));
    const pid = bed.vmRecord('a', 'readonly', 'vm0').pid;
    for (let run = 1; run <= RUNS; run++) {
      const started = Date.now();
      const r = await bed.vccr.checkpoint('readonly').then(
        () => 'completed',
        (err: Error) => err.message,
      );
      assert.match(r, /failed in prepare: checkpoint store \S+readonly is not writable \(EROFS\)/);
      await assertUntouched('readonly', pid);
      t.diagnostic(`run ${run}: ${r}`);
      report({ suite: 'storage', case: 'read-only store', run, outcome: 'failed cleanly', maxPausedMs: 0, ms: Date.now() - started, detail: r, ok: true });
    }
  });
});

describe('a committed checkpoint damaged afterwards: restart refuses before touching anything', () => {
  const cluster = 'damage';
  let pid = 0;
  before(async () => {
    await up(oneVm(cluster, bed.store, 128, 16, true));
    pid = bed.vmRecord('a', cluster, 'vm0').pid;
  });

  const damages: Array<[string, (dir: string) => void, RegExp]> = [
    [
      'state file corrupted',
      (dir) => {
        const file = join(dir, 'vm0.state');
        const fd = openSync(file, 'r+');
        const at = random(0, statSync(file).size - 1);
        const byte = Buffer.alloc(1);
        readFileSync(file).copy(byte, 0, at, at + 1);
        byte[0] = (byte[0] ?? 0) ^ 0xff;
        writeSync(fd, byte, 0, 1, at);
        closeSync(fd);
      },
      /state file \S+vm0\.state of VM vm0 does not match its checksum/,
    ],
    ['state file deleted', (dir) => rmSync(join(dir, 'vm0.state')), /state file \S+vm0\.state is missing/],
    [
      'manifest checksum edited',
      (dir) => {
        const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { vms: Array<{ state: { sha256: string } }> };
        const vm = m.vms[0];
        if (vm) vm.state.sha256 = '0'.repeat(64);
        writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
      },
      /does not match its checksum/,
    ],
    ['manifest not JSON', (dir) => writeFileSync(join(dir, 'manifest.json'), '{"format": "vccr-checkpoint", '), /manifest.json is not valid JSON/],
    [
      'manifest points outside the store',
      (dir) => {
        const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { vms: Array<{ disks: Array<{ frozen: string }> }> };
        const disk = m.vms[0]?.disks[0];
        if (disk) disk.frozen = '/etc/shadow';
        writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
      },
      /disk layer \/etc\/shadow of VM vm0 is outside the store/,
    ],
  ];

  for (const [what, damage, reason] of damages) {
    test(what, { timeout: RUNS * 60_000 }, async (t) => {
      for (let run = 1; run <= RUNS; run++) {
        const started = Date.now();
        const id = `${what.replace(/\W+/g, '-')}-${run}`;
        await bed.vccr.checkpoint(cluster, { checkpointId: id });
        damage(join(bed.store, cluster, id));
        const refused = await bed.vccr.restart(cluster, { checkpointId: id, force: true }).then(
          () => 'restarted',
          (err: Error) => err.message,
        );
        assert.match(refused, reason);
        assert.match(refused, /failed in validate/, 'refused before touching anything');
        await assertUntouched(cluster, pid);
        const verify = await bed.vccr.checkpoints.verify(cluster, id).then(
          (r) => (r.ok ? 'ok' : r.problems.join('; ')),
          (err: Error) => err.message,
        );
        assert.notEqual(verify, 'ok', 'verify reports the damage too');
        t.diagnostic(`run ${run}: ${refused.slice(0, 200)}`);
        report({ suite: 'storage', case: what, run, outcome: 'refused', maxPausedMs: 0, ms: Date.now() - started, detail: refused, ok: true });
      }
    });
  }
});
