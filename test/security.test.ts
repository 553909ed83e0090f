// Security: a host acts only on VMs it launched; checkpoint data is private (0600/0700); no shell is
// ever used by the product; hostile names never get through; and Temporal can be reached over mutual TLS
// with certificates from flags or environment.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { join, relative } from 'node:path';
import { Worker, NativeConnection } from '@temporalio/worker';
import { REPO_ROOT, type TestBed } from '../harness/testbed';
import { freePort } from '../harness/ports';
import { RING2, startRingBed } from './helpers/ring-bed';
import { VccrClient } from '../client';
import { toVccrError } from '../client/errors';
import type { ResolvedVm } from '../common/spec';
import { DEFAULT_CONTROLLER_TASK_QUEUE } from '../common/ids';

const VMS = RING2;
let bed: TestBed;
before(async () => (bed = await startRingBed('sec', VMS, { tokens: 1 })));
after(() => bed?.stop());

test('a host worker refuses to act on a VM another host launched', { timeout: 120_000 }, async () => {
  const connection = await NativeConnection.connect({ address: bed.server.address });
  const worker = await Worker.create({
    connection,
    taskQueue: 'security-test',
    workflowsPath: require.resolve('./helpers/foreign-workflow'),
  });
  const config = JSON.parse(readFileSync(join(bed.hostStateDir('a'), 'sec', 'vm0', 'vm.json'), 'utf8')) as { config: ResolvedVm };
  try {
    const refusals = await worker.runUntil(
      (await bed.temporal()).workflow.execute('actOnForeignVm', {
        taskQueue: 'security-test',
        workflowId: `foreign-${Date.now()}`,
        args: [{ cluster: 'sec', vm: 'vm0', otherHost: 'b', config: config.config }],
      }) as Promise<string[]>,
    );
    assert.match(refusals[0] ?? '', /^pauseVms: NotOurVm: host b did not launch VM vm0 of cluster sec/);
    // resumeVms reports per VM instead of throwing (so one VM cannot keep others paused): vm0 is refused.
    assert.match(refusals[1] ?? '', /^resumeVms: ACCEPTED \{"resumed":\[\],"failed":\[\{"name":"vm0","reason":"host b did not launch VM vm0 of cluster sec/);
    assert.match(refusals[2] ?? '', /^freezeDisks: NotOurVm/);
    assert.match(refusals[3] ?? '', /^launchVms: WrongHost: VM vm0 belongs to host a, not b/);
    assert.match(refusals[4] ?? '', /^captureVms: NotOurVm: host b did not launch VM vm0 of cluster sec/);
    assert.match(refusals[5] ?? '', /^finishSaves: NotOurVm: host b did not launch VM vm0 of cluster sec/);
  } finally {
    await connection.close();
  }
  const status = await bed.vccr.status('sec');
  assert.deepEqual(status.vms.map((v) => [v.name, v.host, v.qmpStatus]), [['vm0', 'a', 'running'], ['vm1', 'b', 'running']]);
});

test('checkpoint data and VM records are private: files 0600, folders 0700', { timeout: 120_000 }, async () => {
  const r = await bed.vccr.checkpoint('sec', { checkpointId: 'private' });
  assert.ok('checkpointId' in r);
  const problems: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      const mode = statSync(path).mode & 0o777;
      if (entry.isDirectory()) {
        if (mode & 0o077) problems.push(`${relative(bed.dir, path)}/ is ${mode.toString(8)}`);
        walk(path);
      } else if (entry.isFile() && mode & 0o077) {
        problems.push(`${relative(bed.dir, path)} is ${mode.toString(8)}`);
      }
    }
  };
  walk(bed.store);
  for (const host of ['a', 'b']) for (const vm of readdirSync(join(bed.hostStateDir(host), 'sec'))) {
    const dir = join(bed.hostStateDir(host), 'sec', vm);
    for (const f of ['.', 'vm.json', 'console.log']) {
      const mode = statSync(join(dir, f)).mode & 0o777;
      if (mode & 0o077) problems.push(`${relative(bed.dir, join(dir, f))} is ${mode.toString(8)}`);
    }
  }
  assert.deepEqual(problems, []);
});

test('no shell anywhere in the product code', () => {
  const offenders: string[] = [];
  const patterns = [
    /(?<![.\w])exec(Sync)?\(/, // child_process.exec runs a shell
    /import\s*\{[^}]*\bexec(Sync)?\b[^}]*\}\s*from\s*'node:child_process'/,
    /shell:\s*true/,
    /uri:\s*[`'"]exec:/, // QEMU's exec: migration runs a shell
    /(spawn|execFile)(Sync)?\(\s*['"`](\/bin\/)?(ba|da)?sh['"`]/,
  ];
  const scan = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) scan(path);
      else if (entry.name.endsWith('.ts')) {
        readFileSync(path, 'utf8')
          .split('\n')
          .forEach((line, i) => {
            if (line.trim().startsWith('//') || line.trim().startsWith('*')) return;
            for (const p of patterns) if (p.test(line)) offenders.push(`${relative(REPO_ROOT, path)}:${i + 1}: ${line.trim()}`);
          });
      }
    }
  };
  for (const dir of ['activities', 'workflows', 'workers', 'client', 'common', 'node']) scan(join(REPO_ROOT, dir));
  assert.deepEqual(offenders, []);
});

test('hostile names never get through: the workflows validate their input', { timeout: 60_000 }, async () => {
  const client = await bed.temporal();
  const cases: Array<[string, unknown, RegExp]> = [
    ['checkpointCluster', { cluster: 'sec', checkpointId: '../../etc' }, /checkpointId: must be/],
    ['checkpointCluster', { cluster: '$(reboot)' }, /cluster: must be/],
    ['restartCluster', { cluster: 'sec', hostMap: { a: 'b;rm -rf /' } }, /hostMap/],
    ['restartCluster', { cluster: 'sec', store: '/tmp/../etc' }, /store: must not contain/],
    ['deleteCheckpoint', { cluster: 'sec', checkpointId: 'x/../../y' }, /checkpointId: must be/],
    ['launchCluster', { spec: { cluster: 'x', store: '/s', hosts: { a: {} }, vms: [{ name: 'v', host: 'a', memoryMiB: 64, boot: { kernel: '/k,file=/etc/shadow' } }] } }, /boot\.kernel/],
  ];
  for (const [type, input, pattern] of cases) {
    const outcome = await client.workflow
      .execute(type, { taskQueue: DEFAULT_CONTROLLER_TASK_QUEUE, workflowId: `hostile-${Math.random().toString(36).slice(2)}`, args: [input] })
      .then(
        () => 'ACCEPTED',
        (err: unknown) => toVccrError(err).message,
      );
    assert.match(outcome, /^invalid \w+ input: /, `${type}: ${outcome}`);
    assert.match(outcome, pattern, `${type}: ${outcome}`);
  }
});

test('Temporal over mutual TLS: certificates from flags (client and CLI), refused without them', { timeout: 120_000 }, async () => {
  const dir = join(bed.dir, 'tls');
  execFileSync('mkdir', ['-p', dir]);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=vccr-test-ca', '-keyout', 'ca.key', '-out', 'ca.pem');
  for (const name of ['server', 'client']) {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name === 'server' ? 'temporal.test' : 'vccr-client'}`, '-keyout', `${name}.key`, '-out', `${name}.csr`);
    writeFileSync(join(dir, `${name}.ext`), name === 'server' ? 'subjectAltName=DNS:temporal.test\nextendedKeyUsage=serverAuth\n' : 'extendedKeyUsage=clientAuth\n');
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', `${name}.ext`, '-out', `${name}.pem`);
  }
  // A TLS front for the dev server that demands a client certificate signed by our CA.
  const [host, port] = bed.server.address.split(':') as [string, string];
  const front: TlsServer = createTlsServer(
    {
      key: readFileSync(join(dir, 'server.key')),
      cert: readFileSync(join(dir, 'server.pem')),
      ca: readFileSync(join(dir, 'ca.pem')),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ['h2'],
    },
    (tlsSocket) => {
      const upstream: Socket = connect(Number(port), host);
      tlsSocket.pipe(upstream).pipe(tlsSocket);
      const end = () => {
        tlsSocket.destroy();
        upstream.destroy();
      };
      tlsSocket.on('error', end);
      upstream.on('error', end);
    },
  );
  const tlsPort = await freePort();
  await new Promise<void>((resolve) => front.listen(tlsPort, '127.0.0.1', () => resolve()));
  try {
    const flags = { address: `127.0.0.1:${tlsPort}`, tlsCa: join(dir, 'ca.pem'), tlsCert: join(dir, 'client.pem'), tlsKey: join(dir, 'client.key'), tlsServerName: 'temporal.test' };
    const secure = await VccrClient.connect(flags);
    try {
      assert.deepEqual(await secure.clusters(), ['sec']);
    } finally {
      await secure.close();
    }
    // Asynchronously: the TLS front runs in this process and must keep serving meanwhile.
    const cli = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [join(REPO_ROOT, 'bin', 'vccr'), '--json', 'status'],
        { encoding: 'utf8', env: { ...process.env, TEMPORAL_ADDRESS: flags.address, TEMPORAL_TLS_CA: flags.tlsCa, TEMPORAL_TLS_CERT: flags.tlsCert, TEMPORAL_TLS_KEY: flags.tlsKey, TEMPORAL_TLS_SERVER_NAME: flags.tlsServerName } },
        (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
      );
    });
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /"cluster": "sec"/);
    // Without a client certificate the TLS front refuses the connection.
    const anonymous = await VccrClient.connect({ address: flags.address, tlsCa: flags.tlsCa, tlsServerName: 'temporal.test' })
      .then(async (c) => {
        try {
          await c.clusters();
          return 'ACCEPTED';
        } finally {
          await c.close();
        }
      })
      .catch((err: unknown) => toVccrError(err).message);
    assert.notEqual(anonymous, 'ACCEPTED');
  } finally {
    await new Promise((resolve) => front.close(resolve));
  }
});
