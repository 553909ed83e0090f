// Test-only delay and fault points for the race tests (test/faults/races.test.ts). Off unless the
// environment variable VCCR_TEST_HOOKS names a hooks file, which only the test bed sets (TestBed option
// `testHooks`); then every call reads that small JSON file, so a test changes hooks while workers run:
//
//   { "clockOffsetMs": -2000,                       host clock offset (see activities/host/clock.ts)
//     "chaosMaxMs": 1000,                            random 0..N ms delay at every "step:<activity>" point
//     "points": { "pause:before-stop@vm0": { "delayMs": 3000, "action": "delay", "once": true } } }
//
// A key "<point>@<vm>" applies to that VM only, "<point>" to all. action: "delay" (default) waits delayMs;
// "crash" SIGKILLs this process (a worker dying at exactly that point), after delayMs if given; "fail"
// throws an error with code EIO. `once` makes a point fire only once (a marker file beside the hooks file
// remembers it across worker restarts). Every point reached is appended to "<hooks file>.reached", so a
// test can wait for a worker to be inside a window.
// With the variable unset, testHook() returns at once and hookClockOffset() is 0.
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';

const HOOKS_FILE = process.env.VCCR_TEST_HOOKS;

export interface HookPoint {
  action?: 'delay' | 'crash' | 'fail';
  delayMs?: number;
  once?: boolean;
}

export interface HooksConfig {
  clockOffsetMs?: number;
  chaosMaxMs?: number;
  points?: Record<string, HookPoint>;
}

function readHooks(file: string): HooksConfig {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as HooksConfig;
  } catch {
    return {}; // no hooks file (yet), or being rewritten: no hooks
  }
}

/** The test clock offset of this host (0 outside tests). */
export function hookClockOffset(): number {
  if (!HOOKS_FILE) return 0;
  const offset = readHooks(HOOKS_FILE).clockOffsetMs;
  return typeof offset === 'number' && Number.isFinite(offset) ? offset : 0;
}

/** A test point: returns at once unless a test configured it. `vm` names the VM the code works on. */
export async function testHook(point: string, vm?: string): Promise<void> {
  if (!HOOKS_FILE) return;
  const hooks = readHooks(HOOKS_FILE);
  if (point.startsWith('step:') && hooks.chaosMaxMs) await sleep(Math.floor(Math.random() * (hooks.chaosMaxMs + 1)));
  const key = vm !== undefined && hooks.points?.[`${point}@${vm}`] ? `${point}@${vm}` : point;
  const hook = hooks.points?.[key];
  if (!hook) return;
  const marker = `${HOOKS_FILE}.fired-${key.replace(/[^a-z0-9-]/gi, '_')}`;
  if (hook.once) {
    if (existsSync(marker)) return;
    writeFileSync(marker, String(process.pid));
  }
  appendFileSync(`${HOOKS_FILE}.reached`, `${JSON.stringify({ point, vm, pid: process.pid, at: Date.now() })}\n`);
  if (hook.action === 'crash') {
    if (hook.delayMs) await sleep(hook.delayMs);
    process.kill(process.pid, 'SIGKILL');
    await sleep(60_000); // the signal is on its way: go no further
  }
  if (hook.action === 'fail') throw Object.assign(new Error(`EIO: injected failure at ${point}`), { code: 'EIO' });
  else if (hook.delayMs) await sleep(hook.delayMs);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type AsyncFn = (...args: never[]) => Promise<unknown>;

/** Puts a "step:<name>" point at the start of every activity (the ordering-chaos test delays them). */
export function withStepHooks<T extends Record<string, AsyncFn>>(activities: T): T {
  if (!HOOKS_FILE) return activities;
  return Object.fromEntries(
    Object.entries(activities).map(([name, fn]) => [
      name,
      async (...args: never[]) => {
        await testHook(`step:${name}`);
        return fn(...args);
      },
    ]),
  ) as T;
}
