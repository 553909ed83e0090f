// Bad input gets one clear line naming what is wrong and a meaningful exit code — never a stack trace:
// malformed specs, unknown clusters and checkpoints, and a second operation on a busy cluster.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, TestBed, guestImageDir } from '../harness/testbed';
import type { ClusterSpecInput } from '../common/spec';
import { toVccrError } from '../client/errors';
import { checkpointWorkflowId, DEFAULT_CONTROLLER_TASK_QUEUE } from '../common/ids';
import { LIVE_CHECKPOINTS_AVAILABLE } from '../common/protection';

let bed: TestBed;

function vccr(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'vccr'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, TEMPORAL_ADDRESS: bed.server.address, VCCR_LOG_LEVEL: 'silent' },
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Exit code and one error line matching `pattern` (after any progress lines), no stack trace. */
function assertRefused(r: { code: number | null; stderr: string }, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr.trim()})`);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('vccr: '));
  assert.equal(errors.length, 1, `exactly one error line: ${r.stderr}`);
  assert.match(errors[0] ?? '', pattern);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
  assert.doesNotMatch(r.stderr, /Error:|\{"level"/, 'no raw error objects or log lines');
}

function goodSpec(cluster: string, memfillMiB = 16): ClusterSpecInput {
  const image = guestImageDir();
  return {
    cluster,
    store: bed.store,
    hosts: { a: {} },
    vms: [
      {
        name: 'vm0',
        host: 'a',
        memoryMiB: 256,
        boot: { kernel: join(image, 'vmlinuz'), initrd: join(image, 'initrd.img'), append: `console=ttyS0 quiet panic=-1 vccr.run=memfill vccr.args=--mb,${memfillMiB}` },
      },
    ],
  };
}

function specFile(name: string, content: unknown): string {
  const path = join(bed.dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

before(async () => (bed = await TestBed.start({ hosts: ['a'] })));
after(() => bed?.stop());

test('malformed specs are refused with the field named', { timeout: 120_000 }, () => {
  const good = goodSpec('good') as unknown as { vms: Array<Record<string, unknown>> } & Record<string, unknown>;
  const vm = good.vms[0] ?? {};
  const cases: Array<[string, unknown, RegExp]> = [
    ['not JSON', '{"cluster": ', /is not valid JSON/],
    ['missing field', { ...good, store: undefined }, /store: /],
    ['wrong type', { ...good, vms: [{ ...vm, memoryMiB: '256' }] }, /vms\[0\]\.memoryMiB: /],
    ['slash in a name', { ...good, cluster: 'a/b' }, /cluster: must be 1-32 characters/],
    ['dot-dot in a name', { ...good, vms: [{ ...vm, name: '..' }] }, /vms\[0\]\.name: /],
    ['space in a name', { ...good, cluster: 'my cluster' }, /cluster: /],
    ['shell metacharacters', { ...good, vms: [{ ...vm, name: 'x;rm -rf /' }] }, /vms\[0\]\.name: /],
    ['relative path', { ...good, store: 'store' }, /store: must be an absolute path/],
    ['path with ..', { ...good, store: '/tmp/../etc' }, /store: must not contain/],
    ['path with a comma', { ...good, vms: [{ ...vm, boot: { kernel: '/tmp/a,b' } }] }, /vms\[0\]\.boot\.kernel: /],
    ['huge memory', { ...good, vms: [{ ...vm, memoryMiB: 1e12 }] }, /vms\[0\]\.memoryMiB: Too big/i],
    ['huge vCPU count', { ...good, vms: [{ ...vm, vcpus: 100000 }] }, /vms\[0\]\.vcpus: /],
    ['unknown host', { ...good, vms: [{ ...vm, host: 'zz' }] }, /vms\[0\]\.host: unknown host "zz"/],
    ['unknown field', { ...good, surprise: true }, /surprise/],
    ['newline in append', { ...good, vms: [{ ...vm, boot: { kernel: '/k', append: 'a\nb' } }] }, /append: must be printable ASCII/],
  ];
  for (const [what, content, pattern] of cases) {
    const r = vccr('up', specFile(`bad-${what.replace(/\W/g, '-')}.json`, content));
    assertRefused(r, 2, pattern);
  }
  assertRefused(vccr('up', join(bed.dir, 'no-such-spec.json')), 2, /cannot read spec .*ENOENT/);
});

test('bad arguments, unknown clusters and checkpoints', { timeout: 120_000 }, () => {
  assertRefused(vccr('frobnicate'), 2, /unknown command "frobnicate"/);
  assertRefused(vccr('checkpoint', 'x', '--bogus'), 2, /Unknown option '--bogus'/);
  assertRefused(vccr('checkpoint', 'Bad_Name'), 2, /cluster name: must be 1-32 characters/);
  assertRefused(vccr('checkpoint', 'nosuch'), 4, /unknown cluster nosuch/);
  assertRefused(vccr('restart', 'nosuch'), 4, /unknown cluster nosuch/);
  assertRefused(vccr('restart', 'c', '--host', 'a=b=c'), 2, /--host a=b=c/);
  assertRefused(vccr('checkpoints', 'list', 'nosuch'), 4, /unknown cluster nosuch/);
  assertRefused(vccr('--address', 'nohost', 'status'), 2, /invalid Temporal address/);
  assertRefused(vccr('--address', '127.0.0.1:1', 'status'), 5, /cannot reach Temporal/);
});

test('a checkpoint while another runs is refused as busy; unknown checkpoints are refused', { timeout: 240_000 }, async () => {
  const up = vccr('up', specFile('busy.json', goodSpec('busy', 200)));
  assert.equal(up.code, 0, up.stderr);
  // Give memfill time to fill its RAM, so the save takes a while.
  await new Promise((r) => setTimeout(r, 8000));
  const first = spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'vccr'), 'checkpoint', 'busy', '--id', 'first', '--no-wait'], {
    encoding: 'utf8',
    env: { ...process.env, TEMPORAL_ADDRESS: bed.server.address },
  });
  assert.equal(first.status, 0, first.stderr);
  const second = vccr('checkpoint', 'busy', '--id', 'second');
  assertRefused(second, 3, /cluster busy is busy: checkpoint first/);
  const result = await (await bed.temporal()).workflow.getHandle(checkpointWorkflowId('busy', 'first')).result();
  assert.equal((result as { checkpointId: string }).checkpointId, 'first');
  assertRefused(vccr('restart', 'busy', '--checkpoint', 'nope', '--force'), 4, /unknown checkpoint nope/);
  assertRefused(vccr('checkpoints', 'show', 'busy', 'nope'), 4, /unknown checkpoint nope/);
  assertRefused(vccr('checkpoints', 'delete', 'busy', 'nope'), 4, /unknown checkpoint nope/);
  assertRefused(vccr('checkpoint', 'busy', '--id', 'first'), 3, /already exists/);
  // Through Temporal directly (another workflow id), the taken id is refused too — and the committed
  // checkpoint is untouched.
  const again = (await bed.temporal()).workflow.start('checkpointCluster', { taskQueue: DEFAULT_CONTROLLER_TASK_QUEUE, workflowId: 'again-first', args: [{ cluster: 'busy', checkpointId: 'first' }] });
  await assert.rejects((await again).result().catch((err: unknown) => Promise.reject(toVccrError(err))), /checkpoint first of cluster busy already exists/);
  assert.equal((await bed.vccr.checkpoints.verify('busy', 'first')).ok, true);
  assert.equal(vccr('down', 'busy').code, 0);
});

test('protection: bad arguments and bad workflow input are refused with one clear line', { timeout: 120_000 }, async () => {
  // The cluster `busy` exists (down) from the test before.
  assertRefused(vccr('protect', 'busy', '--every', '10'), 2, /--every 10: expected a duration like 30s/);
  assertRefused(vccr('protect', 'busy', '--every', '10m', '--keep-last', 'x'), 2, /--keep-last x: expected a whole number/);
  assertRefused(vccr('protect', 'busy', '--every', '10m', '--keep-last', '0'), 2, /keep at least one checkpoint/);
  assertRefused(vccr('protect', 'busy', '--keep-last', '3'), 2, /--every is required/);
  assertRefused(vccr('protect', 'busy', '--pause', '--off'), 2, /at most one of --pause, --resume, --now, --off/);
  if (!LIVE_CHECKPOINTS_AVAILABLE) assertRefused(vccr('protect', 'busy', '--every', '10m', '--live'), 2, /live checkpoints are not available in this version/);
  assertRefused(vccr('protect', 'nosuch', '--every', '1m'), 4, /unknown cluster nosuch/);
  assertRefused(vccr('protect', 'busy', '--pause'), 4, /cluster busy is not protected/);
  assertRefused(vccr('recover', 'busy'), 4, /cluster busy is not protected/);
  assertRefused(vccr('recover', 'busy', '--host-dead', 'zz'), 2, /--host-dead zz: cluster busy has no host zz/);
  // Through Temporal (a Schedule or the Web UI could start these with anything): validated by the workflow.
  const client = await bed.temporal();
  for (const [type, input, pattern] of [
    ['protectCluster', { cluster: 'busy', retention: { keepLast: 0 } }, /invalid protectCluster input: retention: keep at least one/],
    ['watchCluster', { cluster: 'busy', settings: { graceSeconds: -1 } }, /invalid watchCluster input: settings\.graceSeconds/],
    ['recoverCluster', { cluster: '../x' }, /invalid recoverCluster input: cluster: /],
  ] as const) {
    const handle = await client.workflow.start(type, { taskQueue: DEFAULT_CONTROLLER_TASK_QUEUE, workflowId: `bad-${type}`, args: [input] });
    await assert.rejects(handle.result().catch((err: unknown) => Promise.reject(toVccrError(err))), pattern);
  }
});
