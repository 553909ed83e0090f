// Reading VM serial consoles (files QEMU appends to). Console lines end in \r\n.
import { readFileSync, statSync } from 'node:fs';
import { sleep } from '../node/proc';

export function readConsole(path: string, from = 0, to?: number): string {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch {
    return '';
  }
  return buf.subarray(from, to ?? buf.length).toString('utf8').replace(/\r/g, '');
}

export function consoleSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** Waits until a line after byte `from` matches; returns the match. Throws with the console's tail on timeout. */
export async function waitForConsole(path: string, pattern: RegExp, options: { from?: number; timeoutMs?: number } = {}): Promise<RegExpMatchArray> {
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  for (;;) {
    const text = readConsole(path, options.from ?? 0);
    const m = text.match(pattern);
    if (m) return m;
    if (Date.now() > deadline) {
      const tail = text.split('\n').slice(-15).join('\n');
      throw new Error(`timed out waiting for ${pattern} in ${path}; last lines:\n${tail}`);
    }
    await sleep(100);
  }
}

export interface RingToken {
  id: number;
  value: bigint;
}

/** The ring tokens (RING TOKEN id=I value=V) printed in `text`, in order. */
export function ringTokens(text: string): RingToken[] {
  return [...text.matchAll(/^RING TOKEN id=(\d+) value=(\d+)$/gm)].map((m) => ({ id: Number(m[1]), value: BigInt(m[2] ?? '0') }));
}

export function ringErrors(text: string): string[] {
  return [...text.matchAll(/^RING (?:ERROR|FATAL) .*$/gm)].map((m) => m[0]);
}

/** The RING CONN line of a node: both TCP connections' addresses. */
export function ringConnections(text: string): string[] {
  return [...text.matchAll(/^RING CONN .*$/gm)].map((m) => m[0]);
}
