// Checks that a restored token ring carried on from exactly the token each node held at the checkpoint,
// over the same TCP connections.
import assert from 'node:assert/strict';
import type { Manifest } from '../../common/manifest';
import type { TestBed } from '../../harness/testbed';
import { ringErrors, ringTokens, waitForConsole } from '../../harness/console';
import { sinceLastRestore, sinceRestoreFrom, tokensAtCheckpoint } from '../../harness/ring';

export { sinceLastRestore, sinceRestoreFrom, tokensAtCheckpoint };

/**
 * After a restart from `manifest`: every node's first token is the exact successor (for that node) of the
 * last one it had at the checkpoint, at least `minTokens` more follow, there is no ring error, and no node
 * opened a new connection (RING CONN/READY are printed only when connections are made).
 */
export async function assertRingContinued(
  bed: Pick<TestBed, 'consoleLog'>,
  cluster: string,
  manifest: Manifest,
  placement: Record<string, string>,
  minTokens = 10,
  ringVms?: string[],
): Promise<Map<string, bigint>> {
  const ring = manifest.vms.filter((v) => !ringVms || ringVms.includes(v.name));
  const atCheckpoint = tokensAtCheckpoint(manifest, ringVms);
  const n = BigInt(ring.length);
  const firstAfter = new Map<string, bigint>();
  // Every node is watched at once (they run together; waiting for each in turn only adds time).
  await Promise.all(
    ring.map(async (vm) => {
      const host = placement[vm.name];
      assert.ok(host, `placement of ${vm.name}`);
      const path = bed.consoleLog(host, cluster, vm.name);
      const pattern = new RegExp(`(?:^RING TOKEN .*\\n){${minTokens}}`, 'm');
      await waitForConsole(path, pattern, { from: 0, timeoutMs: 60_000 }).catch(() => undefined);
      const deadline = Date.now() + 60_000;
      let text = sinceRestoreFrom(manifest, vm.name, path);
      while (ringTokens(text).length < minTokens && ringErrors(text).length === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        text = sinceRestoreFrom(manifest, vm.name, path);
      }
      assert.deepEqual(ringErrors(text), [], `${vm.name}: no ring error after the restore`);
      const tokens = ringTokens(text);
      assert.ok(tokens.length >= minTokens, `${vm.name}: ${tokens.length} tokens after the restore (want ${minTokens})`);
      const expected = (atCheckpoint.get(vm.name) ?? 0n) + n;
      assert.equal(tokens[0]?.value, expected, `${vm.name}: first token after the restore is the successor of the one it held at the checkpoint`);
      assert.doesNotMatch(text, /^RING (CONN|READY)/m, `${vm.name}: no new connection after the restore`);
      firstAfter.set(vm.name, tokens[0]?.value ?? 0n);
    }),
  );
  return firstAfter;
}
