// qemu-img, for the disk-chain work that happens on files (the controller's offline merges, garbage
// collection and validation; a host's restore). Run with an argument vector, never a shell.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { z } from 'zod';

const run = promisify(execFile);

const imageInfoSchema = z.looseObject({
  filename: z.string(),
  format: z.string(),
  'full-backing-filename': z.string().optional(),
  'backing-filename': z.string().optional(),
  'backing-filename-format': z.string().optional(),
});
export type DiskImageInfo = z.output<typeof imageInfoSchema>;

function stderrOf(err: unknown): string {
  const stderr = (err as { stderr?: string }).stderr?.trim();
  return stderr || (err instanceof Error ? err.message : String(err));
}

/**
 * The backing chain recorded in the images' headers, top first: what QEMU would open under `top`.
 * `-U`: the images may be open in a running QEMU (reading headers is safe). Throws if any layer of the
 * chain cannot be opened (a missing file, a damaged header).
 */
export async function imageChain(top: string): Promise<DiskImageInfo[]> {
  let stdout: string;
  try {
    ({ stdout } = await run('qemu-img', ['info', '-U', '--backing-chain', '--output=json', top], { maxBuffer: 16 * 1024 * 1024 }));
  } catch (err) {
    throw new Error(`cannot read the backing chain of ${top}: ${stderrOf(err)}`);
  }
  const parsed = z.array(imageInfoSchema).min(1).safeParse(JSON.parse(stdout));
  if (!parsed.success) throw new Error(`qemu-img info gave an unexpected answer for ${top}`);
  // qemu-img names the top image as given and the others by their full path: name every layer by path.
  return parsed.data.map((info, i) => (i === 0 ? { ...info, filename: top } : info));
}

/** The chain's file names, top first. */
export async function chainFiles(top: string): Promise<string[]> {
  return (await imageChain(top)).map((i) => i.filename);
}

/**
 * Makes `image` back onto `newBacking` without changing what its guest sees: qemu-img's safe rebase copies
 * into `image` every cluster where the old and the new backing chain differ, then rewrites the header. An
 * interruption leaves the old header (and some extra, identical clusters): the image stays valid. Only for
 * images no running QEMU has open.
 */
export async function rebasePreservingContent(image: string, newBacking: string, newBackingFormat: string): Promise<void> {
  try {
    await run('qemu-img', ['rebase', '-q', '-f', 'qcow2', '-b', newBacking, '-F', newBackingFormat, image]);
  } catch (err) {
    throw new Error(`qemu-img rebase of ${image} onto ${newBacking} failed: ${stderrOf(err)}`);
  }
}
