// Every host its own machine: three hosts and a controller machine, each with its own network namespace
// (reaching the Temporal server only over a veth link into the namespace where it listens), its own mount
// namespace (own /etc, /opt, /var, /tmp; own state folder; the store bind-mounted at /srv/vccr/store like
// an NFS mount) and its own hostname. VCCR is installed on each from the release tarball by running the
// README's "Install on your hosts" steps as written (systemctl emulated from the unit files: harness/unit.ts).
// Then: doctor, a checkpoint of a 3-VM token ring spread over the hosts, a restart moving one host's VM to
// another host, `vccr down`; and doctor must name each thing broken on one host at a time.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { REPO_ROOT, guestImageDir, ringCluster } from '../harness/testbed';
import { DevServer } from '../harness/dev-server';
import { janitor, killRecordedVms } from '../harness/janitor';
import { Lab, STORE, SWITCH_IP, type Machine } from '../harness/lab';
import { startUnit, type StartedUnit } from '../harness/unit';
import { waitForConsole } from '../harness/console';
import { sleep, terminate, waitFor } from '../node/proc';
import type { DoctorReport } from '../common/doctor';
import type { Manifest } from '../common/manifest';
import { assertRingContinued } from './helpers/ring-check';
import { readmeBlock } from './helpers/readme';

const HOSTS = ['a', 'b', 'c'];
const CLUSTER = 'mh';
const PORT = 7233;
const VMS = [
  { name: 'vm0', host: 'a' },
  { name: 'vm1', host: 'b' },
  { name: 'vm2', host: 'c' },
];
const IMAGES = '/srv/vccr/images';

let dir: string;
let lab: Lab | undefined;
let server: DevServer | undefined;
let tarball: string;
const units: StartedUnit[] = [];

const stateDir = (host: string) => `/var/lib/vccr/hosts/${host}`;
const consoleLog = (host: string, cluster: string, vm: string) => machine(host).outside(`${stateDir(host)}/${cluster}/${vm}/console.log`);

function machine(name: string): Machine {
  assert.ok(lab);
  return lab.machine(name);
}

before(async () => {
  dir = mkdtempSync('/tmp/vccr-mh-');
  janitor.trackPath(dir);
  execFileSync('bash', [join(REPO_ROOT, 'scripts', 'dist.sh'), '--no-build', '--out', join(dir, 'release')], { stdio: 'ignore' });
  tarball = join(dir, 'release', `vccr-${JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).version}-linux-x64.tar.gz`);
  lab = Lab.create(join(dir, 'lab'));
  server = await DevServer.start({ dbFile: join(dir, 'temporal.db'), logFile: join(dir, 'temporal.log'), port: PORT, netns: { name: lab.switchNs, ip: SWITCH_IP } });
  lab.addMachine({ name: 'ctl' });
  for (const h of HOSTS) {
    lab.addMachine({ name: h, taps: VMS.length });
    janitor.trackVmState(machine(h).outside(stateDir(h)));
  }
  lab.shareReadOnly(guestImageDir(), IMAGES);
  // The machines run what the tarball installed, nothing from this checkout.
  lab.hide(REPO_ROOT);
});

after(async () => {
  const stateDirs = lab ? HOSTS.map((h) => machine(h).outside(stateDir(h))) : [];
  for (const d of stateDirs) await killRecordedVms(d);
  for (const u of units) {
    await terminate(u.process, 'SIGKILL');
    janitor.untrackProcess(u.process);
  }
  await server?.stop();
  lab?.destroy();
  for (const d of stateDirs) janitor.untrackVmState(d);
  rmSync(dir, { recursive: true, force: true });
  janitor.untrackPath(dir);
});

/**
 * Runs a README block inside a machine, line by line as a shell would, except `systemctl`, which starts
 * units from their files. Substitutions: the Temporal address, and the host id of `HOST=`.
 */
async function followReadme(m: Machine, name: string, host?: string): Promise<void> {
  const text = readmeBlock(name).replace(/\\\n\s*/g, ' ').replaceAll('temporal.example.internal:7233', `${SWITCH_IP}:${PORT}`);
  let chunk: string[] = [];
  const flush = () => {
    if (chunk.length) m.must(['bash', '-euo', 'pipefail', '-c', chunk.join('\n')]);
    chunk = [];
  };
  for (const raw of text.split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'))) {
    const line = host ? raw.replace(/^HOST=.*$/, `HOST=${host}`) : raw;
    if (!line.startsWith('systemctl ')) {
      chunk.push(line);
      continue;
    }
    flush();
    const unit = /^systemctl enable --now (\S+)$/.exec(line.replace('$HOST', host ?? '$HOST'))?.[1];
    if (line === 'systemctl daemon-reload') continue;
    assert.ok(unit, `a systemctl line the test can follow: ${line}`);
    const [template, instance] = unit.includes('@') ? [unit.replace(/@.*$/, '@.service'), unit.replace(/^.*@/, '')] : [`${unit}.service`, undefined];
    const started = startUnit(m, `/etc/systemd/system/${template}`, { ...(instance ? { instance } : {}), logDir: dir });
    units.push(started);
    const ready = instance ? 'host worker running' : 'controller worker running';
    await waitFor(`${unit} on ${m.name} (log ${started.logFile})`, () => (readFileSync(started.logFile, 'utf8').includes(ready) ? true : undefined), 60_000, 100);
  }
  flush();
}

/** `vccr` on the controller machine, configured by its environment file as the README says. */
function vccr(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = machine('ctl').run(['bash', '-c', 'set -a; . /etc/vccr/vccr.env; set +a; exec vccr "$@"', 'vccr', ...args], { timeoutMs: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function doctor(): { code: number | null; report: DoctorReport; failed: string[] } {
  const r = vccr('doctor', '/tmp/cluster.json', '--json');
  const report = JSON.parse(r.stdout) as DoctorReport;
  const failed = report.participants.flatMap((p) => p.checks.filter((c) => c.status === 'fail').map((c) => `${p.participant}:${c.name}`)).sort();
  return { code: r.code, report, failed };
}

function detailOf(report: DoctorReport, participant: string, check: string): string {
  return report.participants.find((p) => p.participant === participant)?.checks.find((c) => c.name === check)?.detail ?? '';
}

test('installed from the release tarball on every machine by the README`s steps; doctor passes', { timeout: 300_000 }, async (t) => {
  t.diagnostic(`tarball ${basename(tarball)}: ${(readFileSync(tarball).length / 2 ** 20).toFixed(1)} MiB`);
  assert.match(readmeBlock('install-every'), new RegExp(basename(tarball).replace(/\./g, '\\.')), 'the README names this version\'s tarball');
  for (const name of ['ctl', ...HOSTS]) {
    const m = machine(name);
    copyFileSync(tarball, m.outside(`/tmp/${basename(tarball)}`));
    const t0 = Date.now();
    await followReadme(m, 'install-every');
    t.diagnostic(`install on ${name} (a fresh machine): ${Date.now() - t0} ms`);
  }
  const lint = machine('a').run(['systemd-analyze', 'verify', '--man=no', 'vccr-host@a.service', 'vccr-controller.service'], { cwd: '/etc/systemd/system' });
  assert.equal(`${lint.stdout}${lint.stderr}`.trim(), '', 'systemd-analyze finds nothing wrong with the units');
  await followReadme(machine('ctl'), 'install-controller');
  for (const h of HOSTS) await followReadme(machine(h), 'install-host', h);

  const spec = ringCluster({ cluster: CLUSTER, store: STORE, image: IMAGES, vms: VMS, tap: (i) => `tap${i}` });
  writeFileSync(machine('ctl').outside('/tmp/cluster.json'), JSON.stringify(spec));
  const check = machine('ctl').run(['bash', '-euo', 'pipefail', '-c', readmeBlock('install-check')]);
  assert.equal(check.status, 0, `${check.stdout}\n${check.stderr}`);
  assert.match(check.stdout, /doctor: all checks passed — cluster mh can be checkpointed and restarted as written/);
  for (const h of HOSTS) assert.match(check.stdout, new RegExp(`host ${h} \\(task queue vccr-host-${h}\\)\\n(?:  (?:ok  |WARN) .*\\n(?:        fix: .*\\n)?)+`), `host ${h}'s block`);
  for (const line of check.stdout.trimEnd().split('\n')) t.diagnostic(line);
});

test('checkpoint, restart onto another host and down across three hosts', { timeout: 420_000 }, async () => {
  const up = vccr('up', '/tmp/cluster.json');
  assert.equal(up.code, 0, up.stderr);
  for (const vm of VMS) await waitForConsole(consoleLog(vm.host, CLUSTER, vm.name), /(?:^RING TOKEN .*\n){10}/m, { timeoutMs: 240_000 });
  const ck = vccr('checkpoint', CLUSTER, '--id', 'ck1');
  assert.equal(ck.code, 0, ck.stderr);
  const shown = vccr('checkpoints', 'show', CLUSTER, 'ck1', '--json');
  const { manifest } = JSON.parse(shown.stdout) as { manifest: Manifest };
  assert.deepEqual(manifest.vms.map((v) => [v.name, v.host]), VMS.map((v) => [v.name, v.host]));
  // Host c's VM comes back on host a; the ring carries on over the VM fabric between the machines.
  const restart = vccr('restart', CLUSTER, '--checkpoint', 'ck1', '--host', 'c=a', '--force');
  assert.equal(restart.code, 0, restart.stderr);
  const outsideManifest: Manifest = {
    ...manifest,
    vms: manifest.vms.map((v) => (v.console ? { ...v, console: { ...v.console, path: machine(v.host).outside(v.console.path) } } : v)),
  };
  await assertRingContinued({ consoleLog }, CLUSTER, outsideManifest, { vm0: 'a', vm1: 'b', vm2: 'a' });
  const status = vccr('status', CLUSTER, '--json');
  assert.deepEqual((JSON.parse(status.stdout) as { vms: Array<{ name: string; host: string; qmpStatus?: string }> }).vms.map((v) => [v.name, v.host, v.qmpStatus]), [
    ['vm0', 'a', 'running'],
    ['vm1', 'b', 'running'],
    ['vm2', 'a', 'running'],
  ]);
  const down = vccr('down', CLUSTER);
  assert.equal(down.code, 0, down.stderr);
  assert.match(down.stdout, /cluster mh is down \(3 VMs stopped\)/);
});

test('doctor names what is broken on one host at a time', { timeout: 300_000 }, async (t) => {
  assert.ok(lab);
  // A tap missing on b.
  spawnSync('ip', ['-n', machine('b').netns, 'link', 'del', 'tap1']);
  let d = doctor();
  assert.equal(d.code, 1);
  assert.deepEqual(d.failed, ['b:network']);
  assert.match(detailOf(d.report, 'b', 'network'), /tap tap1 \(vm1 net0\) does not exist/);
  t.diagnostic(`tap missing on b: ${detailOf(d.report, 'b', 'network')}`);
  lab.addTap(machine('b'), 'tap1');

  // The store not mounted on c: its /srv/vccr/store is just an empty local folder.
  lab.unmountStore(machine('c'));
  d = doctor();
  assert.equal(d.code, 1);
  assert.deepEqual(d.failed, ['c:same-store']);
  assert.match(detailOf(d.report, 'c', 'same-store'), /\/srv\/vccr\/store here is not the store the controller, host a, host b see/);
  t.diagnostic(`store not mounted on c: ${detailOf(d.report, 'c', 'store')} / ${detailOf(d.report, 'c', 'same-store')}`);
  lab.mountStore(machine('c'));

  // Temporal unreachable from a: its link to the switch is down.
  spawnSync('ip', ['-n', machine('a').netns, 'link', 'set', 'eth0', 'down']);
  d = doctor();
  assert.equal(d.code, 1);
  assert.deepEqual(d.failed, ['a:worker']);
  assert.match(detailOf(d.report, 'a', 'worker'), /no worker picked up the check on task queue vccr-host-a|stopped answering during the check/);
  assert.match(detailOf(d.report, 'a', 'worker'), /Temporal last heard from \d+@a/, 'names the worker that lost its connection');
  t.diagnostic(`Temporal unreachable from a: ${detailOf(d.report, 'a', 'worker')}`);
  spawnSync('ip', ['-n', machine('a').netns, 'link', 'set', 'eth0', 'up']);

  // Everything repaired: the worker reconnects by itself and doctor passes again.
  await waitFor('doctor to pass again after the repairs', async () => {
    const again = doctor();
    if (again.code === 0) return true;
    await sleep(2000);
    return undefined;
  }, 120_000, 0);
});
