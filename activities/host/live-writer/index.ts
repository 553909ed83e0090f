// The host worker's side of the detached live writer (process.ts): start one for a snapshot (as the
// snapshot's sink), or join one a previous worker started — keyed by its status file, which names the
// checkpoint, the run and the VM. The worker never holds the stream itself, so its death cannot break it.
import { closeSync, existsSync, openSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { isAlive } from '../../../node/proc';
import type { SinkFactory, SnapshotSink } from '../migration';
import type { TransferResult } from '../transfer';
import { isFinal, readStatus, type WriterStatus } from './status';

export { readStatus, type WriterStatus } from './status';

const WRITER_SCRIPT = join(__dirname, 'process.js');
const POLL_MS = 100;
/** How long a new writer may take to listen. */
const START_TIMEOUT_MS = 10_000;

/** A sink run by a new detached writer whose status goes to `statusPath`. */
export function detachedSink(statusPath: string, logPath: string): SinkFactory {
  return async (vm, socketPath, file) => {
    if (existsSync(statusPath)) throw new Error(`a live writer already ran for ${statusPath}`);
    const log = openSync(logPath, 'a', 0o600);
    const child = spawn(process.execPath, [WRITER_SCRIPT, '--vm', vm, '--socket', socketPath, '--file', file, '--status', statusPath], {
      detached: true,
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    child.unref();
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      const status = readStatus(statusPath);
      if (status?.state === 'failed') throw Object.assign(new Error(`the live writer could not start: ${status.error}`), status.code ? { code: status.code } : {});
      if (status) return joinWriter(statusPath);
      if (Date.now() > deadline) {
        if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
        throw new Error(`the live writer did not start within ${START_TIMEOUT_MS / 1000} s (see ${logPath})`);
      }
      await sleep(10);
    }
  };
}

/** The sink of a writer that already runs (or ran): follows its status file. */
export function joinWriter(statusPath: string): SnapshotSink {
  let last = readStatus(statusPath);
  let dropped: Error | undefined;
  let settle!: (status: WriterStatus | undefined) => void;
  const final = new Promise<WriterStatus | undefined>((resolve) => (settle = resolve));
  const timer = setInterval(() => {
    last = readStatus(statusPath) ?? last;
    if (isFinal(last)) settle(last);
    else if (!last || !isAlive(last)) settle(readStatus(statusPath)); // died without a final word
  }, POLL_MS);
  void final.then(() => clearInterval(timer));
  const done = final.then((status): TransferResult => {
    if (status?.state === 'received') return { size: status.size, sha256: status.sha256 };
    const why = status?.state === 'failed' ? status.error : 'the live writer process died';
    throw Object.assign(new Error(why), status?.state === 'failed' && status.code ? { code: status.code } : {});
  });
  done.catch(() => undefined);
  const signal = () => {
    if (last && !isFinal(last) && isAlive(last)) process.kill(last.pid, 'SIGTERM');
  };
  return {
    get bytes() {
      return last?.bytes ?? 0;
    },
    // Unknown to us: the writer itself only closes before QEMU connected, and drains after.
    connected: true,
    get dropped() {
      return dropped;
    },
    ended: final.then(() => undefined),
    done,
    drop: (reason) => {
      dropped ??= reason;
      signal();
    },
    close: () => signal(),
  };
}

/** The final status of the writer at `statusPath`, waiting for it (undefined: no writer ran there). */
export async function writerOutcome(statusPath: string): Promise<WriterStatus | undefined> {
  if (!existsSync(statusPath)) return undefined;
  const sink = joinWriter(statusPath);
  await sink.ended;
  return readStatus(statusPath);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
