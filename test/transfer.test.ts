// The state streaming code on its own (the end-to-end tests run it between real QEMUs): streams whose
// sizes fall on and around the 4 KiB O_DIRECT block and the ring's slot size go socket → file → socket
// unchanged, with the right sha256, both through O_DIRECT and through the page cache.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { StateReceiver, sendState } from '../activities/host/transfer';
import { HashLane, SLOT_BYTES, sha256File } from '../node/hasher';
import { StateFile } from '../activities/host/state-file';

const dir = mkdtempSync('/tmp/vccr-transfer-');
after(() => rmSync(dir, { recursive: true, force: true }));

const SIZES = [0, 1, 4095, 4096, 4097, SLOT_BYTES - 1, SLOT_BYTES, SLOT_BYTES + 1, 3 * SLOT_BYTES + 12_345];
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Sends `data` into the receiver's socket in uneven pieces, as a migration stream arrives. */
function feed(socketPath: string, data: Buffer): void {
  const socket = connect(socketPath);
  for (let off = 0; off < data.length; off += 99_991) socket.write(data.subarray(off, Math.min(data.length, off + 99_991)));
  socket.end();
}

/** A one-connection listener (as QEMU after migrate-incoming) that collects what arrives. */
async function collector(socketPath: string): Promise<{ data: Promise<Buffer> }> {
  const chunks: Buffer[] = [];
  let resolveData!: (b: Buffer) => void;
  const data = new Promise<Buffer>((r) => (resolveData = r));
  const server = createServer((s: Socket) => {
    server.close();
    s.on('data', (c: Buffer) => chunks.push(Buffer.from(c)));
    s.on('end', () => resolveData(Buffer.concat(chunks)));
  });
  await new Promise<void>((r) => server.listen(socketPath, r));
  return { data };
}

test('streams of every boundary size are saved and loaded unchanged, with their sha256', { timeout: 120_000 }, async () => {
  for (const size of SIZES) {
    const data = randomBytes(size);
    const file = join(dir, `s${size}.state`);
    const receiver = new StateReceiver(join(dir, 'save.sock'), file);
    await receiver.start();
    feed(join(dir, 'save.sock'), data);
    const saved = await receiver.done;
    assert.equal(saved.size, size);
    assert.equal(saved.sha256, sha256(data), `sha256 of a ${size}-byte stream`);
    assert.ok(readFileSync(file).equals(data), `file content of a ${size}-byte stream`);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(await sha256File(file), saved.sha256);

    const arrived = await collector(join(dir, `load${size}.sock`));
    const sent = await sendState(join(dir, `load${size}.sock`), file);
    assert.equal(sent.sha256, saved.sha256);
    assert.ok((await arrived.data).equals(data), `loaded content of a ${size}-byte stream`);
  }
});

test('a state file is written the same with O_DIRECT and through the page cache', async () => {
  const data = randomBytes(SLOT_BYTES + 5000);
  for (const direct of [true, false]) {
    const path = join(dir, `direct-${direct}.state`);
    const out = await StateFile.create(path, { direct });
    // Whether /tmp takes O_DIRECT depends on its filesystem: the test covers whichever path it gets.
    const lane = HashLane.acquire();
    try {
      const [first, second] = lane.slots as [Buffer, Buffer];
      data.copy(first, 0, 0, SLOT_BYTES);
      data.copy(second, 0, SLOT_BYTES);
      await Promise.all([out.write(first, SLOT_BYTES, 0), out.write(second, 5000, SLOT_BYTES)]);
      await out.finish(data.length);
      await Promise.all([lane.hash(0, SLOT_BYTES), lane.hash(1, 5000)]);
      assert.equal(await lane.digest(), sha256(data));
    } catch (err) {
      lane.discard();
      throw err;
    }
    assert.ok(readFileSync(path).equals(data), `content with direct=${direct} (opened direct: ${out.direct})`);
  }
});

test('an existing file is never overwritten', async () => {
  const file = join(dir, 'exists.state');
  writeFileSync(file, 'keep');
  const receiver = new StateReceiver(join(dir, 'exists.sock'), file);
  await assert.rejects(receiver.start(), /EEXIST/);
  assert.equal(readFileSync(file, 'utf8'), 'keep');
});

test('idle hashing threads do not keep a process alive', () => {
  // A process that hashed a file must exit by itself (the lane it used stays pooled, unreferenced).
  const hasher = resolve(__dirname, '..', 'node', 'hasher.js');
  const file = join(dir, 'small');
  writeFileSync(file, 'hello');
  const out = execFileSync(process.execPath, ['-e', `require(${JSON.stringify(hasher)}).sha256File(${JSON.stringify(file)}).then((h) => console.log(h))`], { timeout: 20_000, encoding: 'utf8' });
  assert.equal(out.trim(), sha256(Buffer.from('hello')));
});
