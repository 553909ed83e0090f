// QMP client tests: against real QEMU (qemu-system-x86_64 7.2 here) and against fake QMP servers
// for the failure modes QEMU never produces on purpose (garbage, silence, fragmented frames).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test as nodeTest, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import {
  backingChain,
  QmpArgumentError,
  QmpClient,
  QmpCommandError,
  QmpConnectError,
  QmpDisconnectedError,
  QmpError,
  QmpProtocolError,
  QmpTimeoutError,
  type QmpConnectOptions,
  type QmpEvent,
} from '../activities/qmp';

const QEMU = process.env.VCCR_QEMU ?? 'qemu-system-x86_64';
const logger = pino({ level: process.env.VCCR_LOG_LEVEL ?? 'silent' }, pino.destination(2));

// ---------------------------------------------------------------------------------------------
// Fixtures: every QEMU we spawn is killed by PID and every temp dir removed, even on failure.

/** Every test gets a deadline, so a hang fails the test instead of stalling the run. */
function test(name: string, fn: (t: TestContext) => Promise<void>): void {
  nodeTest(name, { timeout: 30_000 }, fn);
}

const spawned = new Set<ChildProcess>();

function killAndWait(child: ChildProcess): Promise<void> {
  spawned.delete(child);
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL'); // by PID; also terminates a SIGSTOPped process
  });
}

after(async () => {
  await Promise.all([...spawned].map(killAndWait));
});

function tempDir(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vccr-qmp-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Vm {
  proc: ChildProcess;
  pid: number;
  qmpPath: string;
  stderr: () => string;
}

type MachineKind = 'none' | 'pc';

function startQemu(t: TestContext, dir: string, machine: MachineKind = 'none', extra: string[] = [], tag = 'vm'): Vm {
  const qmpPath = path.join(dir, `${tag}.qmp`);
  const machineArgs = machine === 'none' ? ['-machine', 'none'] : ['-machine', 'pc', '-accel', 'tcg', '-m', '32'];
  const proc = spawn(
    QEMU,
    [...machineArgs, '-nodefaults', '-display', 'none', ...extra, '-qmp', `unix:${qmpPath},server=on,wait=off`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  assert.ok(proc.pid, 'QEMU did not start');
  spawned.add(proc);
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  t.after(() => killAndWait(proc));
  return { proc, pid: proc.pid, qmpPath, stderr: () => stderr };
}

async function connect(t: TestContext, socketPath: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
  const client = await QmpClient.connect(socketPath, { retryWindowMs: 5000, logger, ...options });
  t.after(() => client.close());
  return client;
}

/** Resolve with how long `promise` took to reject, and the error. Fails if it resolves. */
async function rejection(promise: Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const start = performance.now();
  try {
    await promise;
  } catch (error) {
    return { error, ms: performance.now() - start };
  }
  assert.fail('expected a rejection');
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

// A fake QMP server: sends a greeting, negotiates, then hands every further command to `onCommand`.
const GREETING = { QMP: { version: { qemu: { major: 9, minor: 9, micro: 9 }, package: 'fake' }, capabilities: [] } };

interface FakeCommand {
  execute: string;
  id: string;
  arguments?: Record<string, unknown>;
}

async function fakeQmpServer(
  t: TestContext,
  dir: string,
  onCommand: (cmd: FakeCommand, sock: net.Socket) => void,
  sendGreeting: (sock: net.Socket) => void = (sock) => sock.write(`${JSON.stringify(GREETING)}\r\n`),
): Promise<string> {
  const socketPath = path.join(dir, 'fake.qmp');
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    sendGreeting(sock);
    let buf = '';
    sock.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const cmd = JSON.parse(buf.slice(0, nl)) as FakeCommand;
        buf = buf.slice(nl + 1);
        if (cmd.execute === 'qmp_capabilities') sock.write(`${JSON.stringify({ return: {}, id: cmd.id })}\r\n`);
        else onCommand(cmd, sock);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return socketPath;
}

// ---------------------------------------------------------------------------------------------
// Real QEMU

test('connects to QEMU while it is still creating its socket, reads the greeting and negotiates', async (t) => {
  const dir = tempDir(t);
  const vm = startQemu(t, dir);
  const start = performance.now();
  const qmp = await connect(t, vm.qmpPath); // started at once: the socket usually does not exist yet
  t.diagnostic(`connected + negotiated ${Math.round(performance.now() - start)} ms after spawn`);
  assert.equal(qmp.connected, true);
  assert.ok(qmp.version.major >= 7, `version ${JSON.stringify(qmp.version)}`);
  assert.equal(typeof qmp.version.package, 'string');
  assert.ok(qmp.capabilities.includes('oob'));
  t.diagnostic(`QEMU ${qmp.version.major}.${qmp.version.minor}.${qmp.version.micro} (${qmp.version.package})`);
});

test('query-status reports a running VM', async (t) => {
  const vm = startQemu(t, tempDir(t));
  const qmp = await connect(t, vm.qmpPath);
  const status = await qmp.command('query-status');
  assert.equal(status.running, true);
  assert.equal(status.status, 'running');
});

for (const machine of ['none', 'pc'] as const) {
  test(`stop emits STOP and pauses; cont emits RESUME and runs (-machine ${machine})`, async (t) => {
    const vm = startQemu(t, tempDir(t), machine);
    const qmp = await connect(t, vm.qmpPath);
    const stream = qmp.events({ names: ['STOP', 'RESUME'] });

    const stopped = qmp.waitForEvent('STOP', undefined, 5000); // registered before the command
    await qmp.command('stop');
    const stopEvent = await stopped;
    assert.equal(stopEvent.event, 'STOP');
    assert.ok(stopEvent.timestamp.seconds > 0);
    const paused = await qmp.command('query-status');
    assert.deepEqual([paused.running, paused.status], [false, 'paused']);

    const resumed = qmp.waitForEvent('RESUME', undefined, 5000);
    await qmp.command('cont');
    await resumed;
    const status = await qmp.command('query-status');
    assert.equal(status.running, true);
    assert.equal(status.status, 'running');

    const first = await stream.next();
    const second = await stream.next();
    assert.deepEqual([first.value?.event, second.value?.event], ['STOP', 'RESUME']);
    await stream.return();
  });
}

test('an unknown command is a QmpCommandError of class CommandNotFound; the session survives', async (t) => {
  const vm = startQemu(t, tempDir(t));
  const qmp = await connect(t, vm.qmpPath);
  const { error } = await rejection(qmp.execute('no-such-command'));
  assert.ok(error instanceof QmpCommandError);
  assert.ok(error instanceof QmpError);
  assert.equal(error.name, 'QmpCommandError');
  assert.equal(error.errorClass, 'CommandNotFound');
  assert.equal(error.command, 'no-such-command');
  assert.match(error.description, /no-such-command/);
  assert.equal((await qmp.command('query-status')).running, true);
});

test('bad arguments: QEMU answers GenericError; the typed layer refuses before sending', async (t) => {
  const vm = startQemu(t, tempDir(t));
  const qmp = await connect(t, vm.qmpPath);

  const { error } = await rejection(qmp.execute('migrate', { urii: 'unix:/nonexistent' }));
  assert.ok(error instanceof QmpCommandError);
  assert.equal(error.errorClass, 'GenericError');
  t.diagnostic(`QEMU said: ${error.description}`);

  const typed = await rejection(qmp.command('migrate', { uri: 'exec:cat > /tmp/x' }));
  assert.ok(typed.error instanceof QmpArgumentError);
  assert.match(typed.error.message, /exec:/);
  const relative = await rejection(
    qmp.command('blockdev-snapshot-sync', { device: 'd0', 'snapshot-file': 'overlay.qcow2', format: 'qcow2' }),
  );
  assert.ok(relative.error instanceof QmpArgumentError);

  // migrate-incoming without -incoming defer is a clean GenericError too.
  const incoming = await rejection(qmp.command('migrate-incoming', { uri: 'unix:/nonexistent.sock' }));
  assert.ok(incoming.error instanceof QmpCommandError);
  assert.equal(incoming.error.errorClass, 'GenericError');
});

test('concurrent commands are matched to their replies by id', async (t) => {
  const vm = startQemu(t, tempDir(t));
  const qmp = await connect(t, vm.qmpPath);
  const statuses = Array.from({ length: 20 }, () => qmp.command('query-status'));
  // Interleave commands with different reply shapes: a mix-up would fail their schemas.
  const migrations = Array.from({ length: 5 }, () => qmp.command('query-migrate'));
  const blocks = Array.from({ length: 5 }, () => qmp.command('query-block'));
  const errors = Array.from({ length: 5 }, (_, i) => rejection(qmp.execute(`bogus-${i}`)));
  for (const s of await Promise.all(statuses)) assert.deepEqual([s.running, s.status], [true, 'running']);
  for (const m of await Promise.all(migrations)) assert.equal(m.status, undefined); // {} before any migration
  for (const b of await Promise.all(blocks)) assert.deepEqual(b, []);
  (await Promise.all(errors)).forEach(({ error }, i) => {
    assert.ok(error instanceof QmpCommandError);
    assert.equal(error.command, `bogus-${i}`);
    assert.match(error.description, new RegExp(`bogus-${i}\\b`));
  });
});

test('QEMU killed while commands are pending: they reject at once with QmpDisconnectedError', async (t) => {
  const vm = startQemu(t, tempDir(t));
  const qmp = await connect(t, vm.qmpPath, { commandTimeoutMs: 60_000 });
  const stream = qmp.events();
  const streamDone = collect(stream);
  const waiter = qmp.waitForEvent('SHUTDOWN', undefined, 60_000);

  process.kill(vm.pid, 'SIGSTOP'); // QEMU cannot answer now: these stay pending
  const pending = Array.from({ length: 5 }, () => qmp.command('query-status'));
  await sleep(100);
  const killedAt = performance.now();
  process.kill(vm.pid, 'SIGKILL');

  for (const p of pending) {
    const { error } = await rejection(p);
    assert.ok(error instanceof QmpDisconnectedError, String(error));
  }
  const ms = performance.now() - killedAt;
  t.diagnostic(`pending commands rejected ${Math.round(ms)} ms after SIGKILL`);
  assert.ok(ms < 2000, `took ${ms} ms`);
  assert.ok((await rejection(waiter)).error instanceof QmpDisconnectedError);
  assert.deepEqual(await streamDone, []); // the iterator ended
  assert.ok((await qmp.closed) instanceof QmpDisconnectedError);
  assert.equal(qmp.connected, false);

  const later = await rejection(qmp.command('query-status'));
  assert.ok(later.error instanceof QmpDisconnectedError);
  assert.ok(later.ms < 50);
  assert.deepEqual(await collect(qmp.events()), []); // a stream opened after the end is already done
  await qmp.close();
  await qmp.close(); // idempotent
});

test('a command that times out rejects with QmpTimeoutError; the late reply is dropped and the session stays usable', async (t) => {
  const vm = startQemu(t, tempDir(t));
  const qmp = await connect(t, vm.qmpPath);
  process.kill(vm.pid, 'SIGSTOP');
  const { error, ms } = await rejection(qmp.command('query-status', undefined, { timeoutMs: 300 }));
  assert.ok(error instanceof QmpTimeoutError);
  assert.equal(error.operation, 'query-status');
  assert.ok(ms >= 290 && ms < 1500, `took ${ms} ms`);
  process.kill(vm.pid, 'SIGCONT'); // now the late reply arrives; it must not confuse the next command
  const status = await qmp.command('query-status');
  assert.equal(status.status, 'running');
  assert.equal(qmp.connected, true);
});

test('waitForEvent times out, honours predicates and abort signals', async (t) => {
  const vm = startQemu(t, tempDir(t));
  const qmp = await connect(t, vm.qmpPath);
  const timedOut = await rejection(qmp.waitForEvent('RESUME', undefined, 200));
  assert.ok(timedOut.error instanceof QmpTimeoutError);
  assert.equal(timedOut.error.operation, 'event:RESUME');

  const controller = new AbortController();
  const aborted = qmp.waitForEvent('STOP', undefined, 5000, controller.signal);
  controller.abort(new Error('no longer needed'));
  assert.match(String((await rejection(aborted)).error), /no longer needed/);

  const never = qmp.waitForEvent('STOP', () => false, 300);
  const stopped = qmp.waitForEvent('STOP', (e: QmpEvent<'STOP'>) => e.timestamp.seconds > 0, 5000);
  await qmp.command('stop');
  await stopped;
  assert.ok((await rejection(never)).error instanceof QmpTimeoutError);
});

test('QEMU serves one QMP client per monitor: a second client gets no greeting and times out', async (t) => {
  const vm = startQemu(t, tempDir(t));
  const first = await connect(t, vm.qmpPath);
  const { error, ms } = await rejection(QmpClient.connect(vm.qmpPath, { connectTimeoutMs: 300, logger }));
  assert.ok(error instanceof QmpConnectError);
  assert.equal(error.reason, 'handshake-timeout');
  assert.ok(ms < 1500);
  assert.equal((await first.command('query-status')).running, true);
});

test('quit: the reply arrives, then the session ends with QmpDisconnectedError', async (t) => {
  const vm = startQemu(t, tempDir(t));
  const qmp = await connect(t, vm.qmpPath);
  const shutdown = qmp.waitForEvent('SHUTDOWN', undefined, 5000);
  await qmp.command('quit');
  const event = await shutdown;
  assert.deepEqual(event.data, { guest: false, reason: 'host-qmp-quit' });
  const reason = await qmp.closed;
  assert.ok(reason instanceof QmpDisconnectedError);
  await new Promise<void>((resolve) => (vm.proc.exitCode !== null ? resolve() : vm.proc.once('exit', () => resolve())));
  assert.equal(vm.proc.exitCode, 0);
});

test('close() rejects pending commands, ends streams and is idempotent', async (t) => {
  const vm = startQemu(t, tempDir(t));
  const qmp = await connect(t, vm.qmpPath);
  process.kill(vm.pid, 'SIGSTOP');
  const pending = rejection(qmp.command('query-status'));
  const streamDone = collect(qmp.events());
  await Promise.all([qmp.close(), qmp.close()]);
  const { error } = await pending;
  assert.ok(error instanceof QmpDisconnectedError);
  assert.match(error.message, /closed by client/);
  assert.deepEqual(await streamDone, []);
  await qmp.close();
  process.kill(vm.pid, 'SIGCONT');
});

test('connecting to a socket that never appears fails with QmpConnectError after the retry window', async (t) => {
  const missing = path.join(tempDir(t), 'never.qmp');
  const { error, ms } = await rejection(QmpClient.connect(missing, { retryWindowMs: 400, logger }));
  assert.ok(error instanceof QmpConnectError);
  assert.equal(error.name, 'QmpConnectError');
  assert.equal(error.reason, 'socket-unavailable');
  assert.match(error.message, /ENOENT/);
  assert.ok(ms >= 390 && ms < 1500, `took ${ms} ms`);

  const once = await rejection(QmpClient.connect(missing, { logger }));
  assert.ok(once.error instanceof QmpConnectError);
  assert.ok(once.ms < 200);

  const controller = new AbortController();
  setTimeout(() => controller.abort(), 100);
  const aborted = await rejection(QmpClient.connect(missing, { retryWindowMs: 10_000, signal: controller.signal, logger }));
  assert.ok(aborted.error instanceof QmpConnectError);
  assert.equal(aborted.error.reason, 'aborted');
  assert.ok(aborted.ms < 1000);

  const tooLong = await rejection(QmpClient.connect(`/tmp/${'x'.repeat(120)}`, { logger }));
  assert.ok(tooLong.error instanceof QmpConnectError);
  assert.equal(tooLong.error.reason, 'invalid-path');
});

// ---------------------------------------------------------------------------------------------
// Migration to a unix socket: how the product saves and restores VM state on QEMU 7.2.

/** Listens on a unix socket, writes what arrives to `file`, and hashes it. */
async function migrationSink(
  t: TestContext,
  socketPath: string,
  file: string,
): Promise<{ done: Promise<{ bytes: number; sha256: string }> }> {
  let settle!: (r: { bytes: number; sha256: string }) => void;
  let fail!: (e: unknown) => void;
  const done = new Promise<{ bytes: number; sha256: string }>((resolve, reject) => {
    settle = resolve;
    fail = reject;
  });
  const server = net.createServer((conn) => {
    server.close(); // one stream per save
    const hash = createHash('sha256');
    const out = fs.createWriteStream(file);
    let bytes = 0;
    conn.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    conn.pipe(out);
    out.on('finish', () => settle({ bytes, sha256: hash.digest('hex') }));
    out.on('error', fail);
    conn.on('error', fail);
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  t.after(() => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve())));
  return { done }; // wrapped: an async function returning a bare promise would wait for it
}

test('save (migrate to a unix socket) and restore (migrate-incoming) a paused VM', async (t) => {
  const dir = tempDir(t);
  const src = startQemu(t, dir, 'pc', [], 'src');
  const qmp = await connect(t, src.qmpPath, { name: 'src' });
  await qmp.command('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
  await qmp.command('migrate-set-parameters', { 'max-bandwidth': 1024 * 1024 * 1024, 'downtime-limit': 300 });
  const params = await qmp.command('query-migrate-parameters');
  assert.equal(params['max-bandwidth'], 1024 * 1024 * 1024);
  const caps = await qmp.command('query-migrate-capabilities');
  assert.equal(caps.find((c) => c.capability === 'events')?.state, true);

  const stateFile = path.join(dir, 'vm.state');
  const sinkPath = path.join(dir, 'save.sock');
  const sink = await migrationSink(t, sinkPath, stateFile);
  const seen: string[] = [];
  const stream = qmp.events({ names: ['STOP', 'MIGRATION', 'MIGRATION_PASS'] });
  const watcher = (async () => {
    for await (const e of stream) {
      seen.push(e.event === 'MIGRATION' ? `MIGRATION:${e.data.status}` : e.event === 'MIGRATION_PASS' ? `PASS:${e.data.pass}` : e.event);
    }
  })();

  const stopped = qmp.waitForEvent('STOP', undefined, 5000);
  await qmp.command('stop');
  await stopped;
  const completedEvent = qmp.waitForEvent('MIGRATION', (e) => ['completed', 'failed', 'cancelled'].includes(e.data.status), 30_000);
  const started = performance.now();
  await qmp.command('migrate', { uri: `unix:${sinkPath}` });
  let info = await qmp.command('query-migrate');
  let polls = 1;
  while (info.status !== 'completed' && info.status !== 'failed') {
    await sleep(20);
    info = await qmp.command('query-migrate');
    polls++;
  }
  assert.equal(info.status, 'completed', info['error-desc']);
  assert.equal((await completedEvent).data.status, 'completed');
  const file = await sink.done;
  const elapsed = performance.now() - started;

  assert.ok(info.ram, 'query-migrate has ram stats once completed');
  assert.ok(info.ram.total >= 32 * 1024 * 1024, `ram total ${info.ram.total}`); // guest RAM + ROM/BIOS regions
  assert.equal(info.ram.remaining, 0);
  assert.ok(info.ram.transferred > 0 && info.ram.transferred <= file.bytes);
  assert.equal(fs.statSync(stateFile).size, file.bytes);
  assert.equal(createHash('sha256').update(fs.readFileSync(stateFile)).digest('hex'), file.sha256);
  assert.equal((await qmp.command('query-status')).status, 'postmigrate');
  await stream.return();
  await watcher;
  // QEMU 7.2, paused guest: STOP MIGRATION:setup PASS:1 MIGRATION:active PASS:2 MIGRATION:completed
  const migrationStates = seen.filter((s) => s.startsWith('MIGRATION:'));
  assert.deepEqual(migrationStates, ['MIGRATION:setup', 'MIGRATION:active', 'MIGRATION:completed']);
  assert.equal(seen[0], 'STOP');
  assert.ok(seen.includes('PASS:1'));
  t.diagnostic(
    `saved ${file.bytes} bytes in ${Math.round(elapsed)} ms (${polls} query-migrate polls; QEMU total-time ${info['total-time']} ms, ` +
      `downtime ${info.downtime} ms, ram total ${info.ram.total}, transferred ${info.ram.transferred}); events: ${seen.join(' ')}`,
  );

  // Restore into a fresh QEMU started with the same configuration plus -incoming defer -S.
  const dst = startQemu(t, dir, 'pc', ['-incoming', 'defer', '-S'], 'dst');
  const dq = await connect(t, dst.qmpPath, { name: 'dst' });
  assert.equal((await dq.command('query-status')).status, 'inmigrate');
  await dq.command('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
  const loaded = dq.waitForEvent('MIGRATION', (e) => ['completed', 'failed'].includes(e.data.status), 30_000);
  const inPath = path.join(dir, 'restore.sock');
  await dq.command('migrate-incoming', { uri: `unix:${inPath}` }); // QEMU now listens on inPath
  const feeder = net.connect(inPath);
  fs.createReadStream(stateFile).pipe(feeder);
  assert.equal((await loaded).data.status, 'completed');
  assert.equal((await dq.command('query-migrate')).status, 'completed');
  const paused = await dq.command('query-status');
  assert.deepEqual([paused.running, paused.status], [false, 'paused']);
  const resumed = dq.waitForEvent('RESUME', undefined, 5000);
  await dq.command('cont');
  await resumed;
  assert.equal((await dq.command('query-status')).status, 'running');
  feeder.destroy();
});

test('migrate to a socket nobody listens on: migrate returns, query-migrate reports failed with error-desc', async (t) => {
  const dir = tempDir(t);
  const vm = startQemu(t, dir);
  const qmp = await connect(t, vm.qmpPath);
  await qmp.command('migrate', { uri: `unix:${path.join(dir, 'nobody.sock')}` });
  let info = await qmp.command('query-migrate');
  while (info.status !== 'failed' && info.status !== 'completed') {
    await sleep(10);
    info = await qmp.command('query-migrate');
  }
  assert.equal(info.status, 'failed');
  assert.match(info['error-desc'] ?? '', /No such file or directory/);
  assert.equal((await qmp.command('query-status')).status, 'running'); // a failed migration leaves the VM as it was
});

test('blockdev-snapshot-sync puts a new overlay on top; query-block shows the backing chain', async (t) => {
  const dir = tempDir(t);
  const base = path.join(dir, 'base.qcow2');
  await new Promise<void>((resolve, reject) => {
    const p = spawn('qemu-img', ['create', '-q', '-f', 'qcow2', base, '16M'], { stdio: 'ignore' });
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`qemu-img exited ${code}`))));
  });
  const vm = startQemu(t, dir, 'none', ['-drive', `file=${base},if=none,id=disk0,format=qcow2`]);
  const qmp = await connect(t, vm.qmpPath);
  const before = await qmp.command('query-block');
  assert.equal(before.length, 1);
  assert.equal(before[0]?.device, 'disk0');
  assert.equal(before[0]?.inserted?.file, base);
  assert.ok(before[0]?.inserted?.['node-name']);
  assert.deepEqual(backingChain(before[0]!.inserted!.image), [base]);

  await qmp.command('stop');
  const overlay = path.join(dir, 'overlay1.qcow2');
  await qmp.command('blockdev-snapshot-sync', { device: 'disk0', 'snapshot-file': overlay, format: 'qcow2' });
  const afterSnap = await qmp.command('query-block');
  const inserted = afterSnap[0]?.inserted;
  assert.ok(inserted);
  assert.equal(inserted.file, overlay);
  assert.equal(inserted.backing_file, base);
  assert.equal(inserted.backing_file_depth, 1);
  assert.deepEqual(backingChain(inserted.image), [overlay, base]);
  const nodes = await qmp.command('query-named-block-nodes', { flat: true });
  assert.ok(nodes.some((n) => n.file === base && n.ro), 'the old image is now a read-only backing node');

  const missing = await rejection(
    qmp.command('blockdev-snapshot-sync', { device: 'nope', 'snapshot-file': path.join(dir, 'x.qcow2'), format: 'qcow2' }),
  );
  assert.ok(missing.error instanceof QmpCommandError);
  t.diagnostic(`unknown device: ${missing.error.errorClass}: ${missing.error.description}`);
});

// ---------------------------------------------------------------------------------------------
// Fake servers: framing and protocol violations

test('fragmented frames and several messages per chunk are reassembled; replies matched out of order', async (t) => {
  const dir = tempDir(t);
  const held: FakeCommand[] = [];
  const socketPath = await fakeQmpServer(
    t,
    dir,
    (cmd, sock) => {
      held.push(cmd);
      if (held.length < 2) return;
      // Answer both at once, in reverse order, with an event in between, in one write.
      const [a, b] = held as [FakeCommand, FakeCommand];
      sock.write(
        `${JSON.stringify({ return: { who: b.execute, note: 'ünïcødé ✓' }, id: b.id })}\r\n` +
          `${JSON.stringify({ event: 'CUSTOM', data: { n: 1 }, timestamp: { seconds: 1, microseconds: 2 } })}\r\n` +
          `${JSON.stringify({ return: { who: a.execute }, id: a.id })}\r\n`,
      );
    },
    (sock) => {
      // The greeting, one byte per write, split inside a multi-byte UTF-8 character too.
      const bytes = Buffer.from(`${JSON.stringify({ ...GREETING, QMP: { ...GREETING.QMP, version: { ...GREETING.QMP.version, package: 'fäke' } } })}\r\n`);
      let i = 0;
      const tick = (): void => {
        if (i < bytes.length && !sock.destroyed) {
          sock.write(bytes.subarray(i, i + 1));
          i++;
          setImmediate(tick);
        }
      };
      tick();
    },
  );
  const qmp = await connect(t, socketPath);
  assert.equal(qmp.version.package, 'fäke');
  assert.equal(qmp.version.major, 9);
  const custom = qmp.waitForEvent('CUSTOM', undefined, 2000);
  const [ra, rb] = await Promise.all([qmp.execute('first'), qmp.execute('second')]);
  assert.deepEqual(ra, { who: 'first' });
  assert.deepEqual(rb, { who: 'second', note: 'ünïcødé ✓' });
  assert.deepEqual((await custom).data, { n: 1 });
});

const violations: Array<[string, (cmd: FakeCommand) => string | Buffer]> = [
  ['a non-JSON line', () => 'this is not json\r\n'],
  ['JSON that is not an object', () => '[1,2,3]\n'],
  ['an object that is neither return, error nor event', (cmd) => `${JSON.stringify({ hello: 'world', id: cmd.id })}\n`],
  ['a reply with both return and error', (cmd) => `${JSON.stringify({ return: {}, error: { class: 'X', desc: 'y' }, id: cmd.id })}\n`],
  ['an error reply without id (server parse error)', () => `${JSON.stringify({ error: { class: 'GenericError', desc: 'JSON parse error' } })}\n`],
  ['a second greeting', () => `${JSON.stringify(GREETING)}\n`],
  ['an event without timestamp', () => `${JSON.stringify({ event: 'STOP' })}\n`],
  ['a known event with a malformed payload', () => `${JSON.stringify({ event: 'MIGRATION', data: { status: 42 }, timestamp: { seconds: 1, microseconds: 0 } })}\n`],
  ['an oversized line', () => Buffer.alloc(64 * 1024, 'x')],
];

for (const [what, garbage] of violations) {
  test(`a peer that sends ${what} gets a QmpProtocolError and the session is torn down`, async (t) => {
    const dir = tempDir(t);
    const socketPath = await fakeQmpServer(t, dir, (cmd, sock) => {
      sock.write(garbage(cmd));
    });
    const qmp = await connect(t, socketPath, { maxLineBytes: 16 * 1024 });
    const streamDone = collect(qmp.events());
    const waiter = qmp.waitForEvent('NEVER', undefined, 10_000);
    const { error, ms } = await rejection(qmp.execute('provoke'));
    assert.ok(error instanceof QmpProtocolError, String(error));
    assert.equal(error.name, 'QmpProtocolError');
    assert.ok(ms < 2000);
    assert.ok((await rejection(waiter)).error instanceof QmpProtocolError);
    assert.deepEqual(await streamDone, []);
    assert.equal(qmp.connected, false);
    assert.ok(qmp.closeReason instanceof QmpProtocolError);
    const later = await rejection(qmp.execute('again'));
    assert.ok(later.error instanceof QmpDisconnectedError);
    assert.ok(later.error.cause instanceof QmpProtocolError);
  });
}

test('garbage instead of a greeting fails connect() with QmpConnectError caused by QmpProtocolError', async (t) => {
  const socketPath = await fakeQmpServer(t, tempDir(t), () => undefined, (sock) => sock.write('{"hello": 1}\n'));
  const { error } = await rejection(QmpClient.connect(socketPath, { logger }));
  assert.ok(error instanceof QmpConnectError);
  assert.equal(error.reason, 'handshake-failed');
  assert.ok(error.cause instanceof QmpProtocolError);
});

test('a peer that never answers: QmpTimeoutError, the session stays open and usable', async (t) => {
  const dir = tempDir(t);
  const socketPath = await fakeQmpServer(t, dir, (cmd, sock) => {
    if (cmd.execute === 'ping') sock.write(`${JSON.stringify({ return: 'pong', id: cmd.id })}\n`);
    // anything else: silence
  });
  const qmp = await connect(t, socketPath, { commandTimeoutMs: 250 });
  const { error, ms } = await rejection(qmp.execute('hang'));
  assert.ok(error instanceof QmpTimeoutError);
  assert.equal(error.name, 'QmpTimeoutError');
  assert.equal(error.operation, 'hang');
  assert.equal(error.timeoutMs, 250);
  assert.ok(ms >= 240 && ms < 1500, `took ${ms} ms`);
  assert.equal(qmp.connected, true);
  assert.equal(await qmp.execute('ping'), 'pong');

  const controller = new AbortController();
  const aborted = qmp.execute('hang', undefined, { signal: controller.signal, timeoutMs: 10_000 });
  controller.abort(new Error('caller gave up'));
  assert.match(String((await rejection(aborted)).error), /caller gave up/);
  assert.equal(await qmp.execute('ping'), 'pong');
});

test('replies that do not match the typed schema are QmpReplyValidationErrors; the session survives', async (t) => {
  const socketPath = await fakeQmpServer(t, tempDir(t), (cmd, sock) => {
    const value = cmd.execute === 'query-status' ? { running: 'yes' } : { status: 'running', running: true };
    sock.write(`${JSON.stringify({ return: value, id: cmd.id })}\n`);
  });
  const qmp = await connect(t, socketPath);
  const { error } = await rejection(qmp.command('query-status'));
  assert.equal((error as Error).name, 'QmpReplyValidationError');
  assert.ok(error instanceof QmpError);
  assert.equal(qmp.connected, true);
  assert.deepEqual(await qmp.execute('anything'), { status: 'running', running: true });
});

test('multiple event subscribers each get every event emitted after they subscribed', async (t) => {
  let emit!: (name: string, data?: Record<string, unknown>) => void;
  const socketPath = await fakeQmpServer(
    t,
    tempDir(t),
    () => undefined,
    (sock) => {
      sock.write(`${JSON.stringify(GREETING)}\n`);
      emit = (event, data) =>
        sock.write(`${JSON.stringify({ event, ...(data ? { data } : {}), timestamp: { seconds: 5, microseconds: 6 } })}\n`);
    },
  );
  const qmp = await connect(t, socketPath);
  const a = qmp.events();
  emit('E1');
  await qmp.waitForEvent('E1', undefined, 2000);
  const b = qmp.events({ names: ['E2', 'E3'] });
  emit('E2', { x: 1 });
  emit('E3');
  await qmp.waitForEvent('E3', undefined, 2000);
  const take = async (s: AsyncIterator<QmpEvent>, n: number): Promise<string[]> => {
    const names: string[] = [];
    for (let i = 0; i < n; i++) names.push((await s.next()).value.event);
    return names;
  };
  assert.deepEqual(await take(a, 3), ['E1', 'E2', 'E3']);
  assert.deepEqual(await take(b, 2), ['E2', 'E3']);
  await qmp.close();
  assert.equal((await a.next()).done, true);
  assert.equal((await b.next()).done, true);
});

test('a subscriber that does not keep up fails with an overflow error after reading what it buffered', async (t) => {
  let burst!: (n: number) => void;
  const socketPath = await fakeQmpServer(
    t,
    tempDir(t),
    () => undefined,
    (sock) => {
      sock.write(`${JSON.stringify(GREETING)}\n`);
      burst = (n) => {
        for (let i = 0; i < n; i++) {
          sock.write(`${JSON.stringify({ event: 'TICK', data: { i }, timestamp: { seconds: 1, microseconds: i } })}\n`);
        }
      };
    },
  );
  const qmp = await connect(t, socketPath);
  const slow = qmp.events({ maxQueued: 5 });
  const unbounded = qmp.events();
  const last = qmp.waitForEvent('TICK', (e) => e.data['i'] === 19, 2000);
  burst(20);
  await last;
  for (let i = 0; i < 5; i++) assert.deepEqual((await slow.next()).value?.data, { i });
  const overflow = await rejection(slow.next());
  assert.ok(overflow.error instanceof QmpError);
  assert.match((overflow.error as Error).message, /overflow/);
  assert.equal((await slow.next()).done, true);
  let count = 0;
  for await (const e of unbounded) {
    assert.equal(e.data['i'], count++);
    if (count === 20) break; // break unsubscribes
  }
  assert.equal(qmp.connected, true);
});
