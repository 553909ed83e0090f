// `vccr doctor` against real workers and real failures: a healthy spec passes (exit 0); a missing tap, an
// unreadable kernel, a missing network namespace, a host without a worker, a store too small or read-only,
// a worker without CAP_SYS_PTRACE (no userfaultfd), missing search attributes and a missing controller are
// each named for the host they concern, with a fix. (Different stores per host: test/multi-host.test.ts.)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, TestBed, ringSpec } from '../harness/testbed';
import { temporalCliPath } from '../harness/dev-server';
import { Tmpfs } from '../harness/tmpfs';
import type { Check, DoctorReport } from '../common/doctor';
import type { ClusterSpecInput } from '../common/spec';

let bed: TestBed;
const VMS = [
  { name: 'vm0', host: 'a' },
  { name: 'vm1', host: 'b' },
];

before(async () => {
  bed = await TestBed.start({ hosts: ['a', 'b'], taps: 2 });
  mkdirSync(bed.store, { recursive: true });
});
after(async () => {
  await bed?.stop();
});

function doctor(args: string[], env: Record<string, string> = {}): { code: number | null; report: DoctorReport | undefined; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'vccr'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, TEMPORAL_ADDRESS: bed.server.address, VCCR_LOG_LEVEL: 'silent', ...env },
    timeout: 120_000,
  });
  let report: DoctorReport | undefined;
  try {
    report = JSON.parse(r.stdout) as DoctorReport;
  } catch {
    report = undefined;
  }
  return { code: r.status, report, stdout: r.stdout, stderr: r.stderr };
}

function specFile(name: string, spec: ClusterSpecInput): string {
  const path = join(bed.dir, name);
  writeFileSync(path, JSON.stringify(spec));
  return path;
}

/** The checks of one participant, by name. */
function checksOf(report: DoctorReport | undefined, participant: string): Map<string, Check> {
  const p = report?.participants.find((x) => x.participant === participant);
  assert.ok(p, `the report has ${participant}: ${JSON.stringify(report)}`);
  return new Map(p.checks.map((c) => [c.name, c]));
}

function failed(report: DoctorReport | undefined): string[] {
  return (report?.participants ?? []).flatMap((p) => p.checks.filter((c) => c.status === 'fail').map((c) => `${p.participant}:${c.name}`)).sort();
}

test('a healthy spec passes every check on every host, and says so', { timeout: 120_000 }, () => {
  const file = specFile('good.json', ringSpec(bed, 'good', VMS));
  const r = doctor(['doctor', file, '--json']);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.deepEqual(failed(r.report), []);
  for (const host of ['a', 'b']) {
    const checks = checksOf(r.report, host);
    assert.deepEqual([...checks.keys()].sort(), ['accel', 'clock', 'images', 'network', 'qemu', 'same-store', 'state-dir', 'store', 'uffd-wp']);
    assert.match(checks.get('qemu')?.detail ?? '', /qemu-system-x86_64 \d+\.\d+/);
    assert.match(checks.get('same-store')?.detail ?? '', /same store as the controller/);
  }
  assert.deepEqual([...checksOf(r.report, 'controller').keys()].sort(), ['same-store', 'store']);
  assert.deepEqual([...checksOf(r.report, 'temporal').keys()], ['reachable', 'search-attributes', 'controller']);
  const human = doctor(['doctor', file]);
  assert.equal(human.code, 0);
  assert.match(human.stdout, /^host a \(task queue vccr-host-a\)$/m);
  assert.match(human.stdout, /doctor: all checks passed — cluster good can be checkpointed and restarted as written/);
});

test('what a host lacks is named for that host, with a fix', { timeout: 180_000 }, () => {
  const spec = ringSpec(bed, 'broken', VMS);
  const [vm0, vm1] = spec.vms;
  assert.ok(vm0?.boot && vm1);
  const tiny = Tmpfs.mount(join(bed.dir, 'tiny-store'), 16);
  try {
    const broken: ClusterSpecInput = {
      ...spec,
      store: tiny.path,
      hosts: { a: {}, b: {}, c: {} },
      vms: [
        { ...vm0, boot: { ...vm0.boot, kernel: '/nonexistent/vmlinuz' } },
        { ...vm1, nics: [{ id: 'net0', tap: 'tap9' }] },
        { name: 'vm2', host: 'a', memoryMiB: 32, machine: 'none', netns: 'vccr-nosuch-ns' },
        { name: 'vm3', host: 'c', memoryMiB: 32, machine: 'none' },
      ],
    };
    const r = doctor(['doctor', specFile('broken.json', broken), '--json']);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(failed(r.report), ['a:images', 'a:network', 'a:store', 'b:network', 'b:store', 'c:worker', 'controller:store']);
    const a = checksOf(r.report, 'a');
    assert.match(a.get('images')?.detail ?? '', /\/nonexistent\/vmlinuz \(vm0\): ENOENT/);
    assert.match(a.get('network')?.detail ?? '', /network namespace vccr-nosuch-ns does not exist/);
    assert.match(checksOf(r.report, 'b').get('network')?.detail ?? '', /tap tap9 \(vm1 net0\) does not exist in network namespace vccr-t-/);
    assert.match(a.get('store')?.detail ?? '', /tmpfs .* free, the cluster's RAM needs 320 MiB/);
    const c = checksOf(r.report, 'c').get('worker');
    assert.match(c?.detail ?? '', /no worker picked up the check on task queue vccr-host-c within 10 seconds; no worker has polled vccr-host-c recently/);
    assert.match(c?.fix ?? '', /systemctl status vccr-host@c/);
    for (const check of r.report?.participants.flatMap((p) => p.checks) ?? []) {
      if (check.status !== 'ok') assert.ok(check.fix, `${check.name} comes with a fix`);
    }
  } finally {
    tiny.unmount();
  }
});

test('a read-only store, and no userfaultfd for a worker without CAP_SYS_PTRACE', { timeout: 120_000 }, async () => {
  await bed.startHost('d', ['setpriv', '--bounding-set', '-sys_ptrace', '--inh-caps', '-all', '--']);
  const ro = Tmpfs.mount(join(bed.dir, 'ro-store'), 16, { readOnly: true });
  try {
    const r = doctor(['doctor', '--host', 'a', '--host', 'd', '--store', ro.path, '--json']);
    assert.equal(r.code, 1);
    assert.deepEqual(failed(r.report), ['a:store', 'controller:store', 'd:store']);
    assert.match(checksOf(r.report, 'a').get('store')?.detail ?? '', /cannot be written: EROFS/);
    assert.equal(checksOf(r.report, 'a').get('uffd-wp')?.status, 'ok');
    const d = checksOf(r.report, 'd').get('uffd-wp');
    assert.equal(d?.status, 'warn', 'live mode would not work, stop mode does');
    assert.match(d?.detail ?? '', /Background-snapshot is not supported by host kernel/);
    assert.match(d?.fix ?? '', /CAP_SYS_PTRACE/);
  } finally {
    ro.unmount();
    await bed.hostWorkers.get('d')?.stop();
  }
});

test('Temporal-side problems: unreachable, search attributes missing, no controller', { timeout: 120_000 }, async () => {
  const file = specFile('good2.json', ringSpec(bed, 'good', VMS));
  const down = doctor(['--address', '127.0.0.1:1', 'doctor', file]);
  assert.equal(down.code, 5);
  assert.match(down.stdout, /FAIL {2}reachable {2}cannot reach Temporal at 127\.0\.0\.1:1/);
  assert.match(down.stdout, /fix: point vccr at your Temporal server with --address HOST:PORT/);
  execFileSync(temporalCliPath(), ['operator', 'namespace', 'create', '--address', bed.server.address, '--namespace', 'bare']);
  const bare = doctor(['--namespace', 'bare', 'doctor', file, '--json']);
  assert.equal(bare.code, 1);
  assert.deepEqual(failed(bare.report), ['temporal:controller', 'temporal:search-attributes']);
  assert.match(checksOf(bare.report, 'temporal').get('search-attributes')?.fix ?? '', /temporal operator search-attribute create --namespace bare --name VccrCluster --type Keyword/);
  // Last: without the controller worker nothing else can be checked, and doctor says why at once.
  await bed.controllers[0]?.stop();
  const headless = doctor(['doctor', file, '--json']);
  assert.equal(headless.code, 1);
  assert.deepEqual(failed(headless.report), ['temporal:controller']);
  assert.match(checksOf(headless.report, 'temporal').get('controller')?.fix ?? '', /vccr-controller/);
});
