// A checkpoint's pause can fall in the middle of a console line: the guest's serial driver hands the UART a
// few bytes at a time, so the start of a line can reach the log before the pause and its rest only after the
// restore (from the guest's tty buffer, which the checkpoint holds). The continuity checks must read that line
// as one — they once saw the record after the pause as missing (CI: protect-retention, "1334 !== 1333").
import test from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Manifest } from '../common/manifest';
import { tokensAtCheckpoint } from '../harness/ring';
import { assertJournalContinued, JOURNAL_VM } from './helpers/protect-bed';
import { assertRingContinued } from './helpers/ring-check';

const dir = mkdtempSync(join(tmpdir(), 'vccr-console-cut-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** A console log as QEMU and the launch step write it: lines up to the pause (the last one cut at `cut`
 * characters), what the VM printed until it was killed, the restore marker, then what the restored VM printed. */
function consoleAcrossRestore(name: string, checkpointId: string, beforePause: string[], cutLine: string, cut: number, killedVm: string[], restored: string[]): { path: string; offsetAtPause: number } {
  const path = join(dir, `${name}.log`);
  const lines = (l: string[]) => l.map((s) => `${s}\r\n`).join('');
  const upToPause = lines(beforePause) + cutLine.slice(0, cut);
  writeFileSync(path, upToPause);
  appendFileSync(path, cutLine.slice(cut) + '\r\n' + lines(killedVm));
  appendFileSync(path, `\n=== vccr: restoring from checkpoint ${checkpointId} (op) at 2026-12-01T00:00:00.000Z ===\n`);
  appendFileSync(path, cutLine.slice(cut) + '\r\n' + lines(restored));
  return { path, offsetAtPause: Buffer.byteLength(upToPause) };
}

function manifestOf(checkpointId: string, vms: Array<{ name: string; console: { path: string; offsetAtPause: number } }>): Manifest {
  // Only the fields the console checks read; the rest of a manifest plays no part here.
  return { checkpointId, vms } as unknown as Manifest;
}

for (const cut of [0, 5, 21]) {
  test(`journal: a record line the pause cut after ${cut} characters is read as the record after the checkpoint`, async () => {
    const seq = (n: number) => `JOURNAL WROTE seq=${n}`;
    const c = consoleAcrossRestore(`jnl-${cut}`, 'ck-j', [seq(1331), seq(1332)], seq(1333), cut, [seq(1334), seq(1335)], [1334, 1335, 1336, 1337, 1338, 1339, 1340, 1341, 1342, 1343].map(seq));
    const manifest = manifestOf('ck-j', [{ name: JOURNAL_VM.name, console: c }]);
    await assertJournalContinued(c.path, manifest, JOURNAL_VM.name, 10);
  });

  test(`ring: a token line the pause cut after ${cut} characters is read as the token after the checkpoint`, async () => {
    const tok = (id: number, v: number) => `RING TOKEN id=${id} value=${v}`;
    const vms = [0, 1].map((id) => {
      const mine = (from: number, n: number) => Array.from({ length: n }, (_, i) => tok(id, from + 2 * i));
      const c = consoleAcrossRestore(`ring${id}-${cut}`, 'ck-r', mine(100 + id, 3), tok(id, 106 + id), cut, mine(108 + id, 2), mine(108 + id, 10));
      return { name: `ring${id}`, console: c };
    });
    const manifest = manifestOf('ck-r', vms);
    const logs = Object.fromEntries(vms.map((v) => [v.name, v.console.path]));
    const bed = { consoleLog: (_host: string, _cluster: string, vm: string) => logs[vm] ?? '' };
    assert.deepEqual([...tokensAtCheckpoint(manifest).values()], [104n, 105n], 'the last whole token before the pause');
    await assertRingContinued(bed, 'c', manifest, { ring0: 'a', ring1: 'b' }, 10);
  });
}
