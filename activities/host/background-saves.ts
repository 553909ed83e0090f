// Stop mode's saves run in the background of the host runtime, not inside an activity: the capture step
// starts them right after the disks are frozen and returns at once, so the workflow's barrier does not
// wait for the I/O; finishSaves joins them. Keyed by checkpoint, workflow run and VM, so a retried capture
// or finishSaves joins the save already running instead of starting another.
import type { SavedState, VmTimestamp } from './types';

interface Job {
  done: Promise<SavedState>;
  abort: AbortController;
}

/** How long a finished save's outcome waits to be joined (a checkpoint abandoned meanwhile never joins it). */
const UNJOINED_KEPT_MS = 15 * 60_000;

export class BackgroundSaves {
  private readonly jobs = new Map<string, Job>();
  /** The store barrier's resume of a saved VM (capture-step.ts), joined by finishSaves for its resume time. */
  private readonly resumes = new Map<string, { done: Promise<VmTimestamp | undefined>; confirm: () => void }>();

  static key(cluster: string, checkpointId: string, runId: string, vm: string): string {
    return `${cluster}/${checkpointId}/${runId}/${vm}`;
  }

  /** The save running (or finished, not yet joined) under `key`, or a new one started with `start`. */
  ensure(key: string, start: (signal: AbortSignal) => Promise<SavedState>): Promise<SavedState> {
    const existing = this.jobs.get(key);
    if (existing) return existing.done;
    const abort = new AbortController();
    const done = start(abort.signal);
    const job = { done, abort };
    this.jobs.set(key, job);
    const forgetLater = () => {
      setTimeout(() => this.forget(key, job), UNJOINED_KEPT_MS).unref();
    };
    // Nobody may ever join a save of an abandoned checkpoint: its failure must not be an unhandled rejection.
    done.then(forgetLater, forgetLater);
    return done;
  }

  /**
   * Starts the early resume of the VM saved under `key`, unless one is under way (a retried capture).
   * `confirmed` resolves when finishSaves arrives: the workflow has seen every VM of the cut paused.
   */
  resumeEarly(key: string, start: (confirmed: Promise<'marked'>) => Promise<VmTimestamp | undefined>): void {
    if (this.resumes.has(key)) return;
    let confirm: () => void = () => undefined;
    const confirmed = new Promise<'marked'>((resolve) => (confirm = () => resolve('marked')));
    this.resumes.set(key, { done: start(confirmed), confirm });
  }

  /**
   * finishSaves: the early resume under `key`, if one was started, told that the cut is confirmed (one still
   * reading the marks goes ahead at once); resolves to its resume time, or undefined when it did not resume.
   */
  earlyResume(key: string): Promise<VmTimestamp | undefined> | undefined {
    const early = this.resumes.get(key);
    early?.confirm();
    return early?.done;
  }

  /** The outcome was taken (joined): a later join starts afresh (and finds the completed file). */
  forget(key: string, job = this.jobs.get(key)): void {
    if (job && this.jobs.get(key) === job) {
      this.jobs.delete(key);
      this.resumes.delete(key);
    }
  }

  /** Cancels the save under `key` (its activity was cancelled); the migration layer ends the migration. */
  abort(key: string): void {
    this.jobs.get(key)?.abort.abort();
  }

  /** Cancels every save (the worker shuts down). */
  abortAll(): void {
    for (const job of this.jobs.values()) job.abort.abort();
    this.jobs.clear();
    this.resumes.clear();
  }
}
