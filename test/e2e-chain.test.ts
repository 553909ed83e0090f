// The whole chain, for real: Temporal dev server → controller worker → host workers → QMP → QEMU.
// Three VMs boot the test guest on a private bridge and run the token ring; inspectCluster asks each
// VM's host for its QMP run state.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestBed, ringSpec } from '../harness/testbed';
import { waitForConsole, ringErrors, readConsole, ringTokens } from '../harness/console';

let bed: TestBed;

before(async () => (bed = await TestBed.start({ hosts: ['a', 'b'], taps: 3 })));
after(() => bed?.stop());

test('a 3-VM ring on 2 host workers is launched, runs, and reports its QMP status through Temporal', { timeout: 180_000 }, async (t) => {
  const vms = [
    { name: 'vm0', host: 'a' },
    { name: 'vm1', host: 'b' },
    { name: 'vm2', host: 'a' },
  ];
  const t0 = Date.now();
  const launched = await bed.vccr.up(ringSpec(bed, 'chain', vms));
  assert.ok('vms' in launched, 'launch returned a result');
  assert.deepEqual(
    launched.vms.map((v) => [v.name, v.host, v.status]),
    vms.map((v) => [v.name, v.host, 'running']),
  );

  // Every VM boots and the ring starts passing tokens across both hosts.
  for (const vm of vms) {
    await waitForConsole(bed.consoleLog(vm.host, 'chain', vm.name), /^RING TOKEN id=\d+ value=\d+$/m, { timeoutMs: 90_000 });
  }
  t.diagnostic(`launch to first token on every VM: ${Date.now() - t0} ms`);

  const status = await bed.vccr.status('chain');
  assert.equal(status.state.status, 'running');
  assert.deepEqual(
    status.vms.map((v) => [v.name, v.host, v.alive, v.qmpStatus]),
    vms.map((v) => [v.name, v.host, true, 'running']),
  );
  for (const vm of status.vms) {
    const record = bed.vmRecord(vm.host, 'chain', vm.name);
    assert.equal(vm.pid, record.pid, 'the status names the process the host launched');
  }

  for (const vm of vms) {
    const text = readConsole(bed.consoleLog(vm.host, 'chain', vm.name));
    assert.deepEqual(ringErrors(text), [], `${vm.name} reports no ring error`);
    assert.ok(ringTokens(text).length > 0);
  }

  const down = await bed.vccr.down('chain');
  assert.ok('stopped' in down);
  assert.deepEqual(down.stopped, ['vm0', 'vm1', 'vm2']);
});
