// The live writer's status file: how the detached writer process (process.ts) tells the host worker —
// this one or a restarted one — how far the write is and how it ended. Written atomically (temp file +
// rename); the final record is fsynced.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import { writeFileAtomic } from '../../../node/fsutil';

export const writerStatusSchema = z.discriminatedUnion('state', [
  /** Listening for QEMU; `pid`/`startTime` identify the process. */
  z.object({ state: z.literal('ready'), pid: z.number().int(), startTime: z.string(), bytes: z.number() }),
  z.object({ state: z.literal('writing'), pid: z.number().int(), startTime: z.string(), bytes: z.number() }),
  /** QEMU closed its end and the file is complete and durable. */
  z.object({ state: z.literal('received'), pid: z.number().int(), startTime: z.string(), bytes: z.number(), size: z.number().int(), sha256: z.string() }),
  /** The file was given up (and removed); the stream was drained to its end if QEMU had connected. */
  z.object({ state: z.literal('failed'), pid: z.number().int(), startTime: z.string(), bytes: z.number(), error: z.string(), code: z.string().optional() }),
]);
export type WriterStatus = z.infer<typeof writerStatusSchema>;

export function isFinal(status: WriterStatus | undefined): boolean {
  return status?.state === 'received' || status?.state === 'failed';
}

export function readStatus(path: string): WriterStatus | undefined {
  try {
    const parsed = writerStatusSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined; // not written yet
  }
}

/** Progress: cheap (no fsync), still atomic. */
export function writeProgress(path: string, status: WriterStatus): void {
  const tmp = `${path}.progress.tmp`;
  writeFileSync(tmp, JSON.stringify(status), { mode: 0o600 });
  renameSync(tmp, path);
}

/** The final record: durable before the process exits. */
export async function writeFinal(path: string, status: WriterStatus): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(status));
}
