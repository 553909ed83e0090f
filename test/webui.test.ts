// The Temporal Web UI tells a person what happened, read from the rendered pages of a real browser
// (Debian's headless Chromium, driven over the DevTools protocol by harness/browser.ts): the dev server
// runs with its UI, a 3-VM cluster is checkpointed and restarted (host a remapped to b), then the
// workflow list filtered by `VccrCluster = "…"` and the checkpoint's workflow page are opened. The test
// saves screenshots of the pages into .cache/webui/ (the README shows copies from docs/).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, TestBed, idleSpec } from '../harness/testbed';
import { freePort } from '../harness/ports';
import { Browser, type Page } from '../harness/browser';
import type { CheckpointResult } from '../client';
import { clusterStateQuery, progressQuery } from '../common/messages';
import { clusterWorkflowId } from '../common/ids';

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
let restartWorkflowId: string;

before(async () => {
  bed = await TestBed.start({ hosts: ['a', 'b'], uiPort: await freePort() });
  ui = bed.server.uiUrl ?? '';
  browser = await Browser.launch();
  page = await browser.newPage();
  await viewport(1440, 1000);
  mkdirSync(SCREENSHOTS, { recursive: true });

  await bed.vccr.up(idleSpec(bed, CLUSTER, VMS));
  const started = await bed.vccr.checkpoint(CLUSTER, { checkpointId: CHECKPOINT, noWait: true });
  assert.ok('workflowId' in started);
  checkpointWorkflowId = started.workflowId;
  const result = (await (await bed.temporal()).workflow.getHandle(checkpointWorkflowId).result()) as CheckpointResult;
  assert.equal(result.checkpointId, CHECKPOINT);
  const restart = await bed.vccr.restart(CLUSTER, { checkpointId: CHECKPOINT, hostMap: { a: 'b' }, force: true, noWait: true });
  assert.ok('workflowId' in restart);
  restartWorkflowId = restart.workflowId;
  await (await bed.temporal()).workflow.getHandle(restartWorkflowId).result();
});

after(async () => {
  await browser?.close();
  await bed?.stop();
});

function viewport(width: number, height: number): Promise<unknown> {
  return page.send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: false });
}

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
  await viewport(1600, 520); // wide enough for the search-attribute columns
  await page.screenshot(join(SCREENSHOTS, 'workflows.png'));
  await viewport(1440, 1000);
  t.diagnostic(`screenshot: ${join(SCREENSHOTS, 'workflows.png')}`);
});

test('a checkpoint`s workflow page tells its story: activity summaries, current details, search attributes', { timeout: 120_000 }, async (t) => {
  await page.goto(`${ui}/namespaces/default/workflows/${checkpointWorkflowId}`);
  // The timeline names each activity call with its summary.
  const timeline = await page.waitForText([/"checkpointId"/, /captureVms/]);
  for (const summary of [
    'lock cluster webui for checkpoint ck-webui',
    'pause vm0, vm2 on host a, freeze their disks, start their saves',
    'pause vm1 on host b, freeze their disks, start their saves',
    'save vm0, vm2 on host a → ck-webui/vm0.state, vm2.state, resume each once saved',
    'save vm1 on host b → ck-webui/vm1.state, resume each once saved',
  ]) {
    assert.ok(timeline.includes(summary), `the timeline shows "${summary}"`);
  }
  await page.evaluate(`[...document.querySelectorAll('h2, h3')].find((h) => h.innerText.trim() === 'Timeline')?.scrollIntoView()`);
  await page.screenshot(join(SCREENSHOTS, 'checkpoint-timeline.png'));

  // Current details (setCurrentDetails) and the static summary and details set at start, if any.
  await page.click('User Metadata');
  const metadata = await page.waitForText([/Current Details/, /checkpoint ck-webui of cluster webui · phase done/]);
  assert.match(metadata, /saved [\d.]+ MiB of [\d.]+ MiB \(100 %\)/);
  for (const vm of VMS) assert.match(metadata, new RegExp(`${vm.name} on host ${vm.host}: running \\([\\d.]+ MiB of [\\d.]+ MiB\\)`));
  assert.match(metadata, /phases: prepare [\d.]+ s · capture [\d.]+ s · save [\d.]+ s · commit [\d.]+ s/);
  const description = await (await bed.temporal()).workflow.getHandle(checkpointWorkflowId).describe();
  // Set by the client when it starts the operation (Temporal markdown: compare the text without markup).
  const staticSummary = (await description.staticSummary())?.replace(/[*_`]/g, '').trim();
  if (staticSummary) assert.ok(metadata.includes(staticSummary), `the static summary "${staticSummary}" is shown`);
  else t.diagnostic('the client set no staticSummary: not checked');
  const staticDetails = await description.staticDetails();
  // Markdown markup only: a list or quote marker at the start, emphasis and code marks (not the '-' in ck-1).
  const firstDetail = staticDetails?.split('\n').find((l) => l.trim())?.replace(/^[#>\s-]+/, '').replace(/[*_`]/g, '').trim();
  if (firstDetail) assert.ok(metadata.includes(firstDetail), `the static details ("${firstDetail}" …) are shown`);
  else t.diagnostic('the client set no staticDetails: not checked');
  await viewport(1440, 680);
  await page.screenshot(join(SCREENSHOTS, 'checkpoint-details.png'));
  await viewport(1440, 1000);

  await page.click('Search Attributes');
  const attributes = await page.waitForText([/VccrCluster/, /VccrOperation/, /VccrPhase/, /VccrCheckpointId/]);
  for (const value of [CLUSTER, 'checkpoint', 'done', CHECKPOINT]) assert.ok(attributes.includes(value), `search attribute value ${value} shown`);
  t.diagnostic(`screenshots: ${SCREENSHOTS}/checkpoint-{timeline,details}.png`);
});

test('the restart`s and the cluster record`s pages show their summaries and current details', { timeout: 120_000 }, async () => {
  await page.goto(`${ui}/namespaces/default/workflows/${restartWorkflowId}`);
  await page.waitForText([
    /loadVmStates • load vm0, vm1, vm2 on host b ← ck-webui\/vm0\.state, vm1\.state, vm2\.state/,
    /launchVms • launch vm0, vm1, vm2 on host b, waiting for ck-webui/,
  ]);
  await page.click('User Metadata');
  await page.waitForText([/restart ck-webui of cluster webui · phase done/, /loaded [\d.]+ MiB of [\d.]+ MiB \(100 %\)/, /vm0 on host b: running/]);

  await page.goto(`${ui}/namespaces/default/workflows/${clusterWorkflowId(CLUSTER)}`);
  await page.waitForText([/clusterRecord/, /User Metadata/]);
  await page.click('User Metadata');
  await page.waitForText([/cluster webui · running · last checkpoint ck-webui/, /host b: vm0, vm1, vm2/, /last operation: restart ck-webui completed/]);
});

/** The field names docs/queries.md lists in the table under `## \`<query>\``. */
function documentedFields(query: string): string[] {
  const doc = readFileSync(join(REPO_ROOT, 'docs', 'queries.md'), 'utf8');
  const section = doc.split(/^## /m).find((s) => s.startsWith(`\`${query}\``)) ?? '';
  return section
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .flatMap((l) => [...(l.split('|')[1] ?? '').matchAll(/`(\w+)`/g)].map((m) => m[1] ?? ''));
}

test('the state and progress queries answer in the versioned shapes docs/queries.md documents', { timeout: 60_000 }, async () => {
  const client = await bed.temporal();
  const state = await client.workflow.getHandle(clusterWorkflowId(CLUSTER)).query(clusterStateQuery);
  assert.equal(state.format, 'vccr-cluster-state');
  assert.equal(state.version, 1);
  const stateFields = documentedFields('state');
  assert.ok(stateFields.length >= 7, `docs/queries.md documents the state query (${stateFields.join(', ')})`);
  assert.deepEqual(Object.keys(state).filter((k) => !['format', 'version', ...stateFields].includes(k)), [], 'every field of state is documented');
  for (const id of [checkpointWorkflowId, restartWorkflowId]) {
    const progress = await client.workflow.getHandle(id).query(progressQuery);
    assert.equal(progress.format, 'vccr-progress');
    assert.equal(progress.version, 1);
    const fields = documentedFields('progress');
    assert.ok(fields.length >= 9, `docs/queries.md documents the progress query (${fields.join(', ')})`);
    assert.deepEqual(Object.keys(progress).filter((k) => !['format', 'version', ...fields].includes(k)), [], `every field of ${id}'s progress is documented`);
  }
});
