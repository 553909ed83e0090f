// Section `disk`: one real guest writing a journal to a virtio disk; what each checkpoint's frozen disk
// overlay adds, against what the guest wrote in between.
import { execFileSync } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readConsole, waitForConsole } from '../../harness/console';
import { guestImageDir, type TestBed } from '../../harness/testbed';
import { median } from '../../common/stats';
import { allocatedBytes, downQuietly, oursCheckpoint } from '../bed-ops';
import { metric, type MetricSink } from '../results';
import { defineSection, type RunContext } from '../section';
import { fmt, range, say } from '../util';

interface DiskConfig {
  checkpoints: number;
  intervalMs: number;
}

export interface DiskCheckpoint {
  checkpointId: string;
  stateBytes: number;
  frozenLayer: string;
  overlayAllocatedBytes: number;
  overlayFileBytes: number;
  recordsSincePrevious: number;
  guestBytesWrittenSincePrevious: number;
  freezeMs: number;
  downtimeMs: number;
}

async function upJournalGuest(bed: TestBed, cluster: string): Promise<string> {
  const image = guestImageDir();
  const base = join(bed.dir, 'journal-base.raw');
  writeFileSync(base, '');
  execFileSync('truncate', ['-s', '64M', base]);
  await bed.vccr.up({
    cluster,
    store: bed.store,
    hosts: { a: {} },
    vms: [
      {
        name: 'w0',
        host: 'a',
        memoryMiB: 256,
        boot: {
          kernel: join(image, 'vmlinuz'),
          initrd: join(image, 'initrd.img'),
          append: 'console=ttyS0 quiet panic=-1 vccr.run=journal vccr.args=write,--dev,/dev/vda,--delay-ms,20',
        },
        disks: [{ id: 'data', image: base, format: 'raw' }],
      },
    ],
  });
  const consolePath = bed.consoleLog('a', cluster, 'w0');
  await waitForConsole(consolePath, /^JOURNAL WROTE seq=\d+$/m, { timeoutMs: 120_000 });
  return consolePath;
}

async function run(ctx: RunContext, cfg: DiskConfig): Promise<DiskCheckpoint[]> {
  const { bed } = ctx;
  const cluster = 'd';
  say(`disk: 1 guest writing a journal (4 KiB records, fdatasync each, every 20 ms) to a virtio disk; ${cfg.checkpoints} checkpoints ${cfg.intervalMs} ms apart`);
  const consolePath = await upJournalGuest(bed, cluster);
  const wrote = () => [...readConsole(consolePath).matchAll(/^JOURNAL WROTE seq=(\d+)$/gm)].length;
  const out: DiskCheckpoint[] = [];
  let previousRecords = 0;
  for (const i of range(cfg.checkpoints)) {
    await new Promise((r) => setTimeout(r, cfg.intervalMs));
    const o = await oursCheckpoint(bed, cluster);
    const records = wrote();
    const frozen = o.manifest.vms[0]?.disks[0]?.frozen ?? '';
    out.push({
      checkpointId: o.result.checkpointId,
      stateBytes: o.result.totalBytes,
      frozenLayer: frozen,
      overlayAllocatedBytes: allocatedBytes(frozen),
      overlayFileBytes: existsSync(frozen) ? statSync(frozen).size : Number.NaN,
      recordsSincePrevious: records - previousRecords,
      guestBytesWrittenSincePrevious: (records - previousRecords) * 4096,
      // Inside the capture step, right after the stop: from QEMU's STOP to the last disk frozen.
      freezeMs: (o.manifest.vms[0]?.timings.frozenAt ?? Number.NaN) - (o.manifest.vms[0]?.timings.pausedAt ?? Number.NaN),
      downtimeMs: o.result.downtimeMs,
    });
    previousRecords = records;
    say(`disk: checkpoint ${i + 1}: overlay ${(allocatedBytes(frozen) / 1024).toFixed(0)} KiB allocated for ${out[out.length - 1]?.recordsSincePrevious} records written; state ${(o.result.totalBytes / 1024 / 1024).toFixed(1)} MiB`);
  }
  const errors = readConsole(consolePath).match(/^JOURNAL ERROR.*$/m);
  if (errors) throw new Error(`journal guest reported ${errors[0]}`);
  await downQuietly(bed, cluster);
  return out;
}

function derive(disk: DiskCheckpoint[], _cfg: DiskConfig, sink: MetricSink): void {
  if (!disk.length) return;
  const later = disk.slice(1);
  sink.metric(
    'disk overlay per checkpoint (KiB)',
    metric(later.map((d) => d.overlayAllocatedBytes / 1024), 'KiB', `frozen qcow2 layer (du), after the first; guest writes ~${fmt(median(later.map((d) => d.guestBytesWrittenSincePrevious / 1024)), 0)} KiB between checkpoints`),
  );
  sink.metric('disk overlay / guest data written', metric(later.map((d) => d.overlayAllocatedBytes / d.guestBytesWrittenSincePrevious), '', 'overhead of the qcow2 layer'));
  sink.metric('freeze with 1 disk (ms)', metric(disk.map((d) => d.freezeMs), 'ms', 'STOP → disk frozen (blockdev-snapshot-sync while paused)'));
}

export const diskSection = defineSection<DiskConfig, DiskCheckpoint[]>({
  name: 'disk',
  about: 'one guest writing to a virtio disk: the frozen overlay each checkpoint adds',
  config: { full: { checkpoints: 5, intervalMs: 3000 }, quick: { checkpoints: 3, intervalMs: 2000 } },
  hosts: () => ['a', 'b'],
  run,
  derive,
});
