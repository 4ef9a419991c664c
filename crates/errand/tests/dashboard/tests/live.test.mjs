// Pages without fragments of their own stay live too: a workflow's page follows its steps
// as workers run them, the batches list follows its counts, and the nodes page (whose data
// changes without an event) shows a new worker, all without a reload.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  api, assertClean, assertNotReloaded, launch, markDocument, newPage, shot, startServer,
} from './harness.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Claims one job of `queue` as `worker` and completes it; resolves to the job. */
async function runOne(queue, worker) {
  const claimed = await api(server.url, 'POST', `/v1/queues/${queue}/claim`, { worker, max: 1 });
  assert.equal(claimed.status, 200, JSON.stringify(claimed.body));
  const job = claimed.body.jobs[0];
  assert.ok(job, `a job in ${queue}`);
  const done = await api(server.url, 'POST', `/v1/jobs/${job.id}/complete`, { lease_token: job.lease_token });
  assert.equal(done.status, 200, JSON.stringify(done.body));
  return job;
}

test("a workflow's page follows its steps without a reload", async () => {
  const wf = (await api(server.url, 'POST', '/v1/workflows', {
    name: 'live',
    steps: [
      { name: 'first', job: { kind: 'step', queue: 'wf-live', payload: {} } },
      { name: 'second', job: { kind: 'step', queue: 'wf-live', payload: {} }, depends_on: ['first'] },
    ],
  })).body;
  const page = await newPage(browser);
  await page.goto(`${server.url}/ui/workflows/${wf.id}`);
  await page.waitForFunction(() => window.__sseOpen === true);
  await page.waitForSelector('[data-step="second"] .state-blocked');
  await markDocument(page);
  await runOne('wf-live', 'w');
  await page.waitForSelector('[data-step="first"] .state-succeeded');
  await page.waitForSelector('[data-step="second"] .state-available');
  await runOne('wf-live', 'w');
  await page.waitForSelector('[data-step="second"] .state-succeeded');
  await page.waitForSelector('#live-page dd .state-succeeded');
  await assertNotReloaded(page);
  await shot(page, 'live-workflow');
  await assertClean(page, 'live workflow');
  await page.close();
});

test('the batches list follows its counts without a reload', async () => {
  const created = (await api(server.url, 'POST', '/v1/batches', {
    jobs: [{ kind: 'b', queue: 'batch-live', payload: {} }],
  })).body;
  const id = created.batch.id;
  const page = await newPage(browser);
  await page.goto(`${server.url}/ui/batches`);
  await page.waitForFunction(() => window.__sseOpen === true);
  const succeeded = `tr[data-batch="${id}"] td:nth-child(5)`;
  assert.equal((await page.textContent(succeeded)).trim(), '0');
  await markDocument(page);
  await runOne('batch-live', 'w');
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.trim() === '1', succeeded);
  await assertNotReloaded(page);
  await assertClean(page, 'live batches');
  await page.close();
});

test('the nodes page shows a new worker without a reload', async () => {
  const page = await newPage(browser);
  await page.goto(`${server.url}/ui/nodes`);
  assert.equal(await page.locator('tr[data-worker="late-worker"]').count(), 0);
  await markDocument(page);
  // A claim, even an empty one, makes the worker known; no event says so.
  const claimed = await api(server.url, 'POST', '/v1/queues/nothing-here/claim', { worker: 'late-worker', max: 1 });
  assert.equal(claimed.status, 200);
  await page.waitForSelector('tr[data-worker="late-worker"]', { timeout: 20000 });
  await assertNotReloaded(page);
  await shot(page, 'live-nodes');
  await assertClean(page, 'live nodes');
  await page.close();
});
