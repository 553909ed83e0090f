// Small tmpfs mounts for storage fault tests (a full disk, a read-only store), janitor-tracked.
import { mkdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { janitor } from './janitor';

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim()}`);
}

export class Tmpfs {
  private constructor(readonly path: string) {}

  static mount(path: string, sizeMiB: number, options: { readOnly?: boolean } = {}): Tmpfs {
    mkdirSync(path, { recursive: true });
    janitor.trackMount(path);
    run('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m,mode=0700${options.readOnly ? ',ro' : ''}`, 'tmpfs', path]);
    return new Tmpfs(path);
  }

  unmount(): void {
    spawnSync('umount', ['-l', this.path]);
    janitor.untrackMount(this.path);
  }
}
