// The clock rules of a live checkpoint (workflows/live-cut.ts), as pure functions: the cut check (every
// STOP precedes every RESUME, with the clock tolerance across hosts) and the up-front clock refusal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkCut, clockRefusals, type CutSample } from '../workflows/live-cut';

const T = 1_764_000_000_000;
const s = (vm: string, host: string, stop: number, resume: number): CutSample => ({ vm, host, stoppedAt: T + stop, resumedAt: T + resume });

test('a cut where every STOP precedes every RESUME by more than ε across hosts holds', () => {
  const v = checkCut([s('a0', 'a', 0, 20), s('a1', 'a', 1.5, 25), s('b0', 'b', 0.4, 18)], 5);
  assert.equal(v.ok, true);
  assert.equal(v.lastStopAt, T + 1.5);
  assert.equal(v.firstResumeAt, T + 18);
  // The tightest pair: a1's STOP (host a) against b0's RESUME (host b), less ε.
  if (v.ok) assert.ok(Math.abs(v.marginMs - (18 - 1.5 - 5)) < 1e-9, String(v.marginMs));
});

test('a VM that ran again before another VM was stopped breaks the cut, and the reason names both', () => {
  const v = checkCut([s('a0', 'a', 0, 10), s('b0', 'b', 2000, 2012)], 5);
  assert.equal(v.ok, false);
  if (!v.ok) {
    assert.match(v.reason, /VM a0 \(host a\) ran again .* before VM b0 \(host b\) was stopped/);
    assert.match(v.reason, /host clocks may differ by 5 ms/);
  }
});

test('across hosts the margin must exceed ε; on one host no margin is needed', () => {
  // STOP of b0 3 ms before a0's RESUME: fine on one clock, not across hosts with ε = 5.
  assert.equal(checkCut([s('a0', 'a', 0, 10), s('a1', 'a', 7, 12)], 5).ok, true);
  const across = checkCut([s('a0', 'a', 0, 10), s('b0', 'b', 7, 12)], 5);
  assert.equal(across.ok, false);
  if (!across.ok) assert.match(across.reason, /only 3\.000 ms after/);
  assert.equal(checkCut([s('a0', 'a', 0, 10), s('b0', 'b', 7, 12)], 2).ok, true);
  // Equal STOP and RESUME is not "before".
  assert.equal(checkCut([s('a0', 'a', 0, 10), s('a1', 'a', 10, 12)], 0).ok, false);
});

test('no samples never commits', () => {
  assert.equal(checkCut([], 5).ok, false);
});

test('a host whose receipt time lies outside [sent − ε, replied + ε] is refused, naming the direction', () => {
  const sent = T;
  const replied = T + 40;
  assert.deepEqual(clockRefusals([{ host: 'a', receivedAt: T + 10 }, { host: 'b', receivedAt: T - 4 }, { host: 'c', receivedAt: T + 44 }], sent, replied, 5), []);
  const refused = clockRefusals([{ host: 'a', receivedAt: T - 300 }, { host: 'b', receivedAt: T + 2000 }], sent, replied, 5);
  assert.equal(refused.length, 2);
  assert.match(refused[0] ?? '', /host a's clock is at least 300 ms behind/);
  assert.match(refused[1] ?? '', /host b's clock is at least 1960 ms ahead/);
});
