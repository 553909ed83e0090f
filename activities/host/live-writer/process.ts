// The detached live writer: one process per live snapshot, started by the host worker (index.ts) before
// the pause and not in its process group, so it outlives the worker. It is the snapshot's sink — a
// draining relay in front of a receiver that writes the state file (sha256 on the way, fsync) — and
// reports through its status file (status.ts). On QEMU 7.2 a stream that breaks while a background
// snapshot runs freezes the guest for good; with the sink here, a host worker that dies (or is restarted)
// during the write leaves the guest running and the file being written, and the next worker joins it.
//
//   node process.js --vm <name> --socket <path> --file <partial file> --status <status file>
// SIGTERM: give the file up — before QEMU connected, at once; after, by draining the stream to its end.
import { rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { inProcessSink, type SnapshotSink } from '../migration/sink';
import { settled } from '../migration/stream';
import { processStartTime } from '../../../node/proc';
import { writeFinal, writeProgress } from './status';

/** A writer QEMU never connects to (its worker died before `migrate`) gives up after this. */
const CONNECT_TIMEOUT_MS = 5 * 60_000;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { vm: { type: 'string' }, socket: { type: 'string' }, file: { type: 'string' }, status: { type: 'string' } } });
  const { vm, socket, file, status } = values;
  if (!vm || !socket || !file || !status) throw new Error('usage: process.js --vm NAME --socket PATH --file PATH --status PATH');
  const id = { pid: process.pid, startTime: processStartTime(process.pid) ?? '' };
  let sink: SnapshotSink;
  try {
    sink = await inProcessSink(vm, socket, file);
  } catch (err) {
    await writeFinal(status, { state: 'failed', ...id, bytes: 0, error: messageOf(err), ...codeOf(err) });
    return;
  }
  let cancelled: Error | undefined;
  const giveUp = (reason: Error): void => {
    cancelled ??= reason;
    if (sink.connected) sink.drop(reason);
    else sink.close(reason);
  };
  process.on('SIGTERM', () => giveUp(new Error('the live write was cancelled')));
  const connectTimer = setTimeout(() => {
    if (!sink.connected) giveUp(new Error(`QEMU did not connect within ${CONNECT_TIMEOUT_MS / 1000} s`));
  }, CONNECT_TIMEOUT_MS);
  writeProgress(status, { state: 'ready', ...id, bytes: 0 });
  const progress = setInterval(() => writeProgress(status, { state: 'writing', ...id, bytes: sink.bytes }), 250);
  const received = settled(sink.done);
  await sink.ended;
  const outcome = await received;
  clearInterval(progress);
  clearTimeout(connectTimer);
  sink.close(cancelled ?? new Error('stream ended'));
  const failure = cancelled ?? sink.dropped ?? (outcome.ok ? undefined : outcome.error);
  if (failure !== undefined || !outcome.ok) {
    await rm(file, { force: true });
    // The receiver's own error (ENOSPC, EIO) says more than the relay's view of it (a reset).
    const why = !outcome.ok && !cancelled ? outcome.error : failure;
    await writeFinal(status, { state: 'failed', ...id, bytes: sink.bytes, error: messageOf(why), ...codeOf(why) });
    return;
  }
  await writeFinal(status, { state: 'received', ...id, bytes: sink.bytes, size: outcome.value.size, sha256: outcome.value.sha256 });
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function codeOf(err: unknown): { code?: string } {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? ((err as { cause?: NodeJS.ErrnoException } | undefined)?.cause?.code);
  return typeof code === 'string' ? { code } : {};
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`live writer: ${messageOf(err)}\n`);
    process.exit(1);
  },
);
