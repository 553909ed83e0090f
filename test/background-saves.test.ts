// The host runtime's background saves (activities/host/background-saves.ts): a retried capture or
// finishSaves joins the save already running instead of starting a second migration of the same VM; a
// joined outcome is forgotten so a later attempt starts afresh; a save nobody joins (its checkpoint was
// abandoned) never becomes an unhandled rejection, which would end the host worker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BackgroundSaves } from '../activities/host/background-saves';
import type { SavedState } from '../activities/host/types';

const saved = (name: string): SavedState => ({ name, file: `/s/${name}.state`, size: 1, sha256: '0'.repeat(64), startedAt: 1, finishedAt: 2 });

test('a second ensure of one key joins the running save; after forget, a new one starts', async () => {
  const saves = new BackgroundSaves();
  const key = BackgroundSaves.key('c', 'ck', 'run-1', 'vm0');
  let started = 0;
  let finish: (s: SavedState) => void = () => undefined;
  const start = () => {
    started++;
    return new Promise<SavedState>((resolve) => (finish = resolve));
  };
  const first = saves.ensure(key, start);
  const second = saves.ensure(key, start);
  assert.equal(started, 1, 'one migration per VM and run');
  finish(saved('vm0'));
  assert.deepEqual(await Promise.all([first, second]), [saved('vm0'), saved('vm0')]);
  saves.forget(key);
  void saves.ensure(key, start);
  assert.equal(started, 2, 'after the outcome was taken, a later attempt starts again (and finds the file done)');
  finish(saved('vm0'));
});

test('runs are told apart: another run of the same checkpoint id never joins this save', () => {
  assert.notEqual(BackgroundSaves.key('c', 'ck', 'run-1', 'vm0'), BackgroundSaves.key('c', 'ck', 'run-2', 'vm0'));
});

test('abort reaches the save; an unjoined failure is no unhandled rejection', async () => {
  const saves = new BackgroundSaves();
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    const key = BackgroundSaves.key('c', 'ck', 'run-1', 'vm1');
    let signal: AbortSignal | undefined;
    saves.ensure(key, (s) => {
      signal = s;
      return new Promise<SavedState>((_, reject) => s.addEventListener('abort', () => reject(new Error('cancelled')), { once: true }));
    });
    saves.abort(key);
    assert.equal(signal?.aborted, true);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

test("the store barrier's early resume: one per VM and run; finishSaves confirms the cut and gets its resume time", async () => {
  const saves = new BackgroundSaves();
  const key = BackgroundSaves.key('c', 'ck', 'run-1', 'vm0');
  let starts = 0;
  const start = async (confirmed: Promise<'marked'>) => {
    starts++;
    // Stands for the marks that never all arrive: only finishSaves' confirmation lets it go ahead.
    await confirmed;
    return { name: 'vm0', at: 42, receivedAt: 40 };
  };
  saves.resumeEarly(key, start);
  saves.resumeEarly(key, start);
  assert.equal(starts, 1, 'a retried capture does not start a second early resume');
  assert.equal(saves.earlyResume(BackgroundSaves.key('c', 'ck', 'run-2', 'vm0')), undefined, "another run's finishSaves finds none");
  assert.deepEqual(await saves.earlyResume(key), { name: 'vm0', at: 42, receivedAt: 40 });
  void saves.ensure(key, async () => saved('vm0'));
  saves.forget(key);
  assert.equal(saves.earlyResume(key), undefined, 'forgotten with its save');
});
