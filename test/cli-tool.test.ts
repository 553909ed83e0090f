// The CLI and the workers behave like tools: every command and both workers answer --help; every argument,
// spec file and setting is checked before any connection is attempted — with Temporal down, bad input is
// still exit code 2 with the field named, never "cannot reach Temporal" — and a failed connection says how
// to point the program at a server. No Temporal server here: nothing listens on the address used.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../harness/testbed';
import { janitor, killRecordedVms } from '../harness/janitor';
import { COMMANDS } from '../client/commands';

const DOWN = '127.0.0.1:1';
const dir = mkdtempSync('/tmp/vccr-cli-');
janitor.trackPath(dir);

after(async () => {
  await killRecordedVms(join(dir, 'state'));
  janitor.untrackVmState(join(dir, 'state'));
  rmSync(dir, { recursive: true, force: true });
  janitor.untrackPath(dir);
});

function run(program: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'bin', program), ...args], {
    encoding: 'utf8',
    env: { ...process.env, TEMPORAL_ADDRESS: DOWN, VCCR_LOG_LEVEL: 'silent' },
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function file(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

test('every command and both workers answer --help (no server needed)', () => {
  const overview = run('vccr', ['--help']);
  assert.equal(overview.code, 0);
  for (const c of COMMANDS) {
    assert.ok(overview.stdout.includes(`vccr ${c.name} ${c.synopsis}`), `vccr --help lists ${c.name}`);
    for (const args of [[...c.name.split(' '), '--help'], ['help', ...c.name.split(' ')]]) {
      const r = run('vccr', args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.ok(r.stdout.startsWith(`usage: vccr ${c.name} ${c.synopsis}\n`), `${args.join(' ')} prints its usage: ${r.stdout}`);
      for (const option of Object.keys(c.options ?? {})) assert.match(r.stdout, new RegExp(`--${option}\\b`), `${c.name} --help documents --${option}`);
    }
  }
  const group = run('vccr', ['checkpoints', '--help']);
  assert.equal(group.code, 0);
  assert.match(group.stdout, /usage: vccr checkpoints list[\s\S]*usage: vccr checkpoints delete/);
  for (const worker of ['vccr-host-worker', 'vccr-controller-worker']) {
    const r = run(worker, ['--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.startsWith(`usage: ${worker} `), r.stdout);
    assert.match(r.stdout, /--address HOST:PORT/);
    assert.match(run(worker, ['--version']).stdout, new RegExp(`^${worker} \\d+\\.\\d+\\.\\d+\\n$`));
  }
  assert.match(run('vccr', ['--version']).stdout, /^vccr \d+\.\d+\.\d+\n$/);
});

test('with Temporal down, bad input is still refused as bad input, naming the field', () => {
  const spec = { cluster: 'c', store: '/srv/s', hosts: { a: {} }, vms: [{ name: 'vm0', host: 'a', memoryMiB: '256', boot: { kernel: '/k' } }] };
  const good = { ...spec, vms: [{ ...spec.vms[0], memoryMiB: 256 }] };
  const cases: Array<[string[], RegExp]> = [
    [['up', file('bad.json', spec)], /vms\[0\]\.memoryMiB: /],
    [['up', file('notjson.json', '{')], /is not valid JSON/],
    [['up', join(dir, 'missing.json')], /cannot read spec .*ENOENT/],
    [['up'], /up: missing spec file/],
    [['up', file('good.json', good), 'extra'], /unexpected argument "extra"/],
    [['checkpoint', 'Bad_Name'], /cluster name: must be 1-32 characters/],
    [['checkpoint', 'c', '--id', '../x'], /checkpoint id: must be 1-64 characters/],
    [['checkpoint', 'c', '--kill'], /--kill is not an option of this command/],
    [['restart', 'c', '--host', 'a=b=c'], /--host a=b=c: expected <from-host>=<to-host>/],
    [['restart', 'c', '--store', 'relative'], /--store: must be an absolute path/],
    [['restart', 'c', '--checkpoint', 'a b'], /checkpoint id: /],
    [['checkpoints', 'list', 'c/d'], /cluster name: /],
    [['checkpoints', 'show', 'c'], /checkpoints show: missing checkpoint id/],
    [['checkpoints', 'verify', 'c', '..'], /checkpoint id: /],
    [['checkpoints', 'delete', 'c', 'x', '--store', '/a/../b'], /--store: must not contain/],
    [['checkpoints', 'frob', 'c'], /checkpoints: unknown subcommand "frob"/],
    [['status', 'UPPER'], /cluster name: /],
    [['down', ''], /cluster name: /],
    [['doctor', file('bad2.json', spec)], /vms\[0\]\.memoryMiB: /],
    [['doctor', '--host', 'A_B'], /host name: /],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['--address', 'no-port', 'status'], /invalid Temporal address: must be host:port/],
    [['--tls-ca', join(dir, 'no-ca.pem'), 'status'], /cannot read TLS CA certificate .*no-ca\.pem/],
    [['--tls-cert', file('cert.pem', 'x'), 'status'], /TLS client certificate and key must be given together/],
  ];
  for (const [args, pattern] of cases) {
    const r = run('vccr', args);
    assert.equal(r.code, 2, `vccr ${args.join(' ')}: exit code (stderr: ${r.stderr.trim()})`);
    assert.match(r.stderr, pattern, `vccr ${args.join(' ')}`);
    assert.doesNotMatch(r.stderr, /cannot reach Temporal|^\s+at /m, `vccr ${args.join(' ')}: refused before connecting, no stack trace`);
  }
});

test('a connection failure says how to point the CLI and the workers at a server', () => {
  const r = run('vccr', ['up', file('good2.json', { cluster: 'c', store: '/srv/s', hosts: { a: {} }, vms: [{ name: 'vm0', host: 'a', memoryMiB: 64, machine: 'none' }] })]);
  assert.equal(r.code, 5);
  assert.match(r.stderr, /^vccr: cannot reach Temporal at 127\.0\.0\.1:1 /);
  assert.match(r.stderr, /point vccr at your Temporal server with --address HOST:PORT \(or TEMPORAL_ADDRESS\), --namespace NS \(or TEMPORAL_NAMESPACE\)/);
  const controller = run('vccr-controller-worker', []);
  assert.equal(controller.code, 1);
  assert.match(controller.stderr, /^vccr-controller-worker: cannot reach Temporal at 127\.0\.0\.1:1 [^\n]*\n {2}point vccr-controller-worker at your Temporal server with --address/);
  janitor.trackVmState(join(dir, 'state'));
  const host = run('vccr-host-worker', ['--host', 'a', '--state-dir', join(dir, 'state')]);
  assert.equal(host.code, 1);
  assert.match(host.stderr, /^vccr-host-worker: cannot reach Temporal at 127\.0\.0\.1:1 [^\n]*\n {2}point vccr-host-worker at your Temporal server/);
  // Bad worker options are configuration errors (exit 2: the units do not restart on it), before connecting.
  for (const [program, args, pattern] of [
    ['vccr-host-worker', [], /--host ID \(or env VCCR_HOST\) is required/],
    ['vccr-host-worker', ['--host', 'a', '--state-dir', 'relative'], /--state-dir \(or VCCR_STATE_DIR\) must be an absolute path/],
    ['vccr-controller-worker', ['--address', 'x'], /invalid Temporal address/],
    ['vccr-controller-worker', ['--bogus'], /Unknown option '--bogus'/],
  ] as Array<[string, string[], RegExp]>) {
    const w = run(program, args);
    assert.equal(w.code, 2, `${program} ${args.join(' ')}: ${w.stderr}`);
    assert.match(w.stderr, pattern);
  }
});
