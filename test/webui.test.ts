// The Temporal Web UI tells a person what happened, read from the rendered pages of a real browser
// (Debian's headless Chromium, driven over the DevTools protocol by harness/browser.ts): the dev server
// runs with its UI, a 3-VM cluster is checkpointed and restarted (host a remapped to b), then the
// workflow list filtered by `VccrCluster = "…"` and the checkpoint's workflow page are opened. The test
// saves a screenshot of each page into .cache/webui/ (the README shows copies from docs/).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, TestBed, idleSpec } from '../harness/testbed';
import { freePort } from '../harness/ports';
import { Browser, type Page } from '../harness/browser';
import type { CheckpointResult } from '../client';

const CLUSTER = 'webui';
const CHECKPOINT = 'ck-webui';
const VMS = [
  { name: 'vm0', host: 'a' },
  { name: 'vm1', host: 'b' },
  { name: 'vm2', host: 'a' },
];
const SCREENSHOTS = join(REPO_ROOT, '.cache', 'webui');

let bed: TestBed;
let browser: Browser;
let page: Page;
let ui: string;
let checkpointWorkflowId: string;

before(async () => {
  bed = await TestBed.start({ hosts: ['a', 'b'], uiPort: await freePort() });
  ui = bed.server.uiUrl ?? '';
  browser = await Browser.launch();
  page = await browser.newPage();
  await page.send('Emulation.setDeviceMetricsOverride', { width: 1440, height: 1000, deviceScaleFactor: 1, mobile: false });
  mkdirSync(SCREENSHOTS, { recursive: true });

  await bed.vccr.up(idleSpec(bed, CLUSTER, VMS));
  const started = await bed.vccr.checkpoint(CLUSTER, { checkpointId: CHECKPOINT, noWait: true });
  assert.ok('workflowId' in started);
  checkpointWorkflowId = started.workflowId;
  const result = (await (await bed.temporal()).workflow.getHandle(checkpointWorkflowId).result()) as CheckpointResult;
  assert.equal(result.checkpointId, CHECKPOINT);
  await bed.vccr.restart(CLUSTER, { checkpointId: CHECKPOINT, hostMap: { a: 'b' }, force: true });
});

after(async () => {
  await browser?.close();
  await bed?.stop();
});

/** Clicks the element with this data-testid; false if there is none. */
function clickTestId(testId: string): Promise<boolean> {
  return page.evaluate<boolean>(`(() => {
    const el = document.querySelector(${JSON.stringify(`[data-testid="${testId}"]`)});
    if (el) el.click();
    return !!el;
  })()`);
}

/** In the Configure Columns drawer: drops columns the story does not need and adds the search attributes. */
async function configureColumns(remove: string[], add: string[]): Promise<void> {
  await page.evaluate(`document.querySelector('[aria-label="Configure Columns"]').click()`);
  await page.waitForText([/Custom Search Attributes/]);
  for (const name of remove) assert.ok(await clickTestId(`orderable-list-item-${name}-remove-button`), `column ${name} can be removed`);
  for (const name of add) assert.ok(await clickTestId(`orderable-list-item-${name}-add-button`), `the drawer offers column ${name}`);
  assert.ok(await clickTestId('drawer-close-button'));
  await page.waitForGone(/Configure Workflows Table/);
}

test('the workflow list filtered by VccrCluster shows every operation of the cluster with its search attributes', { timeout: 120_000 }, async (t) => {
  const query = `VccrCluster = "${CLUSTER}"`;
  await page.goto(`${ui}/namespaces/default/workflows?query=${encodeURIComponent(query)}`);
  await page.waitForText([/checkpointCluster/, /restartCluster/, /launchCluster/, /clusterRecord/]);
  await configureColumns(['Run ID', 'Start', 'End'], ['VccrOperation', 'VccrPhase', 'VccrCheckpointId']);
  const text = await page.waitForText([/VccrOperation/, /VccrPhase/, /VccrCheckpointId/]);
  assert.ok(text.includes(query), 'the filter is shown');
  const row = (workflowType: string) => text.split('\n').find((l) => l.includes(workflowType)) ?? '';
  assert.match(row('checkpointCluster'), new RegExp(`checkpoint\\s+done\\s+${CHECKPOINT}`), 'the checkpoint row: operation, phase, checkpoint id');
  assert.match(row('restartCluster'), new RegExp(`restart\\s+done\\s+${CHECKPOINT}`));
  assert.match(row('clusterRecord'), /cluster\s+running/);
  await page.screenshot(join(SCREENSHOTS, 'workflows.png'));
  t.diagnostic(`screenshot: ${join(SCREENSHOTS, 'workflows.png')}`);
});

test('a checkpoint`s workflow page shows its search attributes', { timeout: 120_000 }, async (t) => {
  await page.goto(`${ui}/namespaces/default/workflows/${checkpointWorkflowId}`);
  await page.waitForText([/checkpointCluster/, /"checkpointId"/, /pauseVms/, /Search Attributes/]);
  await page.screenshot(join(SCREENSHOTS, 'checkpoint.png'));
  await page.click('Search Attributes');
  const text = await page.waitForText([/VccrCluster/, /VccrPhase/]);
  for (const value of [CLUSTER, 'checkpoint', 'done', CHECKPOINT]) assert.ok(text.includes(value), `search attribute value ${value} shown`);
  t.diagnostic(`screenshot: ${join(SCREENSHOTS, 'checkpoint.png')}`);
});
