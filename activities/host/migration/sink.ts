// Where a background snapshot's stream goes: a sink QEMU connects to at `socketPath`, which writes the
// stream to the state file and — whatever fails on our side — keeps draining QEMU's stream to its end
// (QEMU 7.2 lifts the write protection from guest RAM only when a snapshot completes; see relay.ts).
// The in-process sink is a DrainingRelay in front of a StateReceiver; the live writer process
// (../live-writer) runs that same sink in a process that outlives the host worker.
import { rm } from 'node:fs/promises';
import { StateReceiver, type TransferResult } from '../transfer';
import { DrainingRelay } from './relay';
import { startReceiver } from './stream';

export interface SnapshotSink {
  /** Bytes QEMU has sent so far (written or drained). */
  readonly bytes: number;
  /** QEMU has connected: from then on the stream must be drained to its end, never closed. */
  readonly connected: boolean;
  /** Why the stream stopped being written (it is still drained), once it did. */
  readonly dropped: Error | undefined;
  /** Resolves when QEMU has closed its end of the stream (or the sink was closed). */
  readonly ended: Promise<void>;
  /** The file, complete and durable; rejects if it is not. */
  readonly done: Promise<TransferResult>;
  /** Stop writing the stream (keep draining it). */
  drop(reason: Error): void;
  /** Releases everything: after QEMU is done with the stream, or if `migrate` was never sent. */
  close(reason: unknown): void;
}

/** Makes the sink for one snapshot: listening at `socketPath`, writing `file` (created exclusively). */
export type SinkFactory = (vm: string, socketPath: string, file: string) => Promise<SnapshotSink>;

/** The sink in this process: a relay on `socketPath` in front of a receiver on `<socketPath>.rx`. */
export const inProcessSink: SinkFactory = async (vm, socketPath, file) => {
  const receiver = new StateReceiver(`${socketPath}.rx`, file);
  await startReceiver(receiver, vm, file);
  const relay = new DrainingRelay(socketPath, `${socketPath}.rx`);
  const sink: SnapshotSink = {
    get bytes() {
      return relay.bytes;
    },
    get connected() {
      return relay.connected;
    },
    get dropped() {
      return relay.dropped;
    },
    ended: relay.ended,
    done: receiver.done,
    drop: (reason) => relay.drop(reason),
    close: (reason) => {
      relay.close();
      receiver.abort(reason);
    },
  };
  try {
    await relay.start();
  } catch (err) {
    sink.close(err);
    await rm(file, { force: true });
    throw err;
  }
  return sink;
};
