// The disk journal detector (guest/README.md, vccr-journal): reading its console lines, and verifying a
// journal disk offline with the host build of its verifier.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { guestImageDir, type TestBed } from '../../harness/testbed';

export const journalWrites = (text: string) => [...text.matchAll(/^JOURNAL WROTE seq=(\d+)$/gm)].map((m) => Number(m[1]));
export const journalErrors = (text: string) => [...text.matchAll(/^JOURNAL ERROR .*$/gm)].map((m) => m[0]);

/** Runs the host build of the journal verifier on a disk chain flattened to a raw image. */
export function verifyJournalDisk(bed: TestBed, top: string): { ok: boolean; records: number; output: string } {
  const raw = join(bed.dir, `verify-${Date.now()}-${Math.floor(Math.random() * 1e6)}.raw`);
  execFileSync('qemu-img', ['convert', '-U', '-O', 'raw', top, raw]);
  let output: string;
  let ok = true;
  try {
    output = execFileSync(join(guestImageDir(), 'bin', 'vccr-journal'), ['verify', '--dev', raw], { encoding: 'utf8' });
  } catch (err) {
    ok = false;
    output = String((err as { stdout?: string }).stdout ?? err);
  } finally {
    execFileSync('rm', ['-f', raw]);
  }
  return { ok, records: Number(/records=(\d+)/.exec(output)?.[1] ?? -1), output: output.trim() };
}

