// A private L2 network for test VMs: a network namespace with a unique name, a bridge, and one tap device
// per VM. QEMU processes are started inside the namespace (spec field `netns`), so guest traffic never
// leaves it. Removing the namespace removes the bridge and taps with it.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { janitor } from './janitor';

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim()}`);
}

export class PrivateNetwork {
  private constructor(
    readonly name: string,
    readonly taps: readonly string[],
  ) {}

  /** Creates namespace `vccr-t-<random>` with bridge br0 and taps tap0..tap<n-1> attached to it. */
  static create(tapCount: number, prefix = 'vccr-t'): PrivateNetwork {
    const name = `${prefix}-${randomBytes(4).toString('hex')}`;
    janitor.trackNetns(name);
    ip(['netns', 'add', name]);
    try {
      ip(['-n', name, 'link', 'set', 'lo', 'up']);
      ip(['-n', name, 'link', 'add', 'br0', 'type', 'bridge']);
      ip(['-n', name, 'link', 'set', 'br0', 'up']);
      const taps: string[] = [];
      for (let i = 0; i < tapCount; i++) {
        const tap = `tap${i}`;
        ip(['-n', name, 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
        ip(['-n', name, 'link', 'set', tap, 'master', 'br0', 'up']);
        taps.push(tap);
      }
      return new PrivateNetwork(name, taps);
    } catch (err) {
      spawnSync('ip', ['netns', 'del', name]);
      janitor.untrackNetns(name);
      throw err;
    }
  }

  /** Call after every process inside has ended. */
  destroy(): void {
    spawnSync('ip', ['netns', 'del', this.name]);
    janitor.untrackNetns(this.name);
  }
}
