// Progress of a running transfer, sent to the operation's workflow as signals (throttled), so its
// `progress` query can show bytes moved per VM while the activity is still running.
import type { TransferProgress } from '../../common/messages';

export type SignalProgress = (workflowId: string, updates: TransferProgress[]) => Promise<void>;

export class ProgressReporter {
  private readonly pending = new Map<string, TransferProgress>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly workflowId: string,
    private readonly send: SignalProgress,
    private readonly everyMs = 1000,
  ) {}

  report = (vm: string, bytesDone: number, bytesTotal: number): void => {
    this.pending.set(vm, { vm, bytesDone, bytesTotal });
    if (!this.timer) this.timer = setTimeout(() => void this.flush(), this.everyMs);
  };

  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.pending.size) return;
    const updates = [...this.pending.values()];
    this.pending.clear();
    // Progress is advisory: a lost signal must never fail the transfer.
    await this.send(this.workflowId, updates).catch(() => undefined);
  }
}
