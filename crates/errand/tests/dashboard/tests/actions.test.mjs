// Actions: retrying a dead job shows it succeed without a reload; a queue is paused and
// resumed; dead jobs are requeued from the dead list; a cross-site POST changes nothing.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { rmSync, writeFileSync } from 'node:fs';
import {
  addDefinition, api, assertClean, assertNotReloaded, enqueue, jobState, launch, markDocument, newPage,
  shot, startServer, tempDir, until,
} from './harness.mjs';

let server;
let browser;
let jobsDir;
let okFile;

before(async () => {
  jobsDir = tempDir('jobs');
  okFile = join(jobsDir, 'ok');
  // Fails until the test creates the file: the test decides when a retry can succeed.
  addDefinition(jobsDir, 'flaky', `queue = "flaky"\n[env]\nOK_FILE = "${okFile}"\n`,
    '#!/bin/bash\nif [ -f "$OK_FILE" ]; then echo "fine now"; exit 0; fi\necho "not yet" >&2\nexit 1\n');
  server = await startServer(['--jobs-dir', jobsDir]);
  await until('definition flaky loaded', async () => {
    const r = await api(server.url, 'GET', '/v1/definitions');
    return r.body.definitions && r.body.definitions.some((d) => d.name === 'flaky');
  });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(jobsDir, { recursive: true, force: true });
});

async function deadJob() {
  const job = await enqueue(server.url, { kind: 'flaky', queue: 'flaky', payload: {}, max_attempts: 1 });
  await jobState(server.url, job.id, 'dead');
  return job;
}

test('a dead job retried from its page is seen succeeding without a reload', async () => {
  rmSync(okFile, { force: true });
  const job = await deadJob();
  const page = await newPage(browser);
  page.on('dialog', (d) => d.accept());
  await page.goto(`${server.url}/ui/jobs/${job.id}`);
  await page.waitForFunction(() => window.__sseOpen === true);
  assert.equal(await page.textContent('.job-head .state'), 'dead');
  await markDocument(page);
  writeFileSync(okFile, 'yes');
  await page.click('text=Retry now');
  // The button's answer shows it ready again; the run's end arrives over the live stream.
  await page.waitForSelector('.job-head .state-succeeded', { timeout: 30000 });
  await page.waitForSelector('#job-live table tbody tr:nth-child(2)');
  assert.match(await page.textContent('#job-live'), /attempt 2 succeeded/);
  await assertNotReloaded(page);
  await shot(page, 'retry-dead-job');
  await assertClean(page, 'retry');
  await page.close();
});

test('dead jobs are requeued from the dead list, after a confirmation', async () => {
  rmSync(okFile, { force: true });
  const a = await deadJob();
  const b = await deadJob();
  const page = await newPage(browser);
  const dialogs = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.accept(); });
  await page.goto(`${server.url}/ui/dead?queue=flaky`);
  await page.waitForSelector(`input[value="${a.id}"]`);
  await markDocument(page);
  writeFileSync(okFile, 'yes');
  // One by its row's button...
  await page.click(`button[aria-label="Requeue job ${a.id}"]`);
  await page.waitForSelector('#flash p.ok');
  assert.match(await page.textContent('#flash'), /Requeued 1 dead job\./);
  // ...and one ticked.
  await page.check(`input[value="${b.id}"]`);
  await page.click('text=Requeue ticked');
  await page.waitForFunction((id) => !document.querySelector(`input[value="${id}"]`), b.id);
  assert.equal(dialogs.length, 2, `confirmations: ${dialogs}`);
  await jobState(server.url, a.id, 'succeeded');
  await jobState(server.url, b.id, 'succeeded');
  await assertNotReloaded(page);
  await shot(page, 'dead-requeued');
  await assertClean(page, 'dead requeue');
  await page.close();
});

test('a queue is paused and resumed from the queues page', async () => {
  await enqueue(server.url, { kind: 'nobody-runs-this', queue: 'to-pause', payload: {} });
  const page = await newPage(browser);
  await page.goto(`${server.url}/ui/queues`);
  await page.click('button[aria-label="Pause queue to-pause"]');
  await page.waitForSelector('tr[data-queue="to-pause"] .state-paused');
  assert.equal((await api(server.url, 'GET', '/v1/queues/to-pause')).body.paused, true);
  await shot(page, 'queue-paused');
  await page.click('button[aria-label="Resume queue to-pause"]');
  await page.waitForSelector('tr[data-queue="to-pause"] .state-active');
  assert.equal((await api(server.url, 'GET', '/v1/queues/to-pause')).body.paused, false);
  await assertClean(page, 'pause');
  await page.close();
});

test('queues named "." and ".." are paused from the queues page too', async () => {
  // In a URL's path the browser would resolve these names away; they go in the query.
  const paused = async (name) => {
    const r = await api(server.url, 'GET', '/v1/queues');
    return r.body.queues.find((q) => q.name === name).paused;
  };
  const page = await newPage(browser);
  for (const name of ['.', '..']) {
    await enqueue(server.url, { kind: 'nobody-runs-this', queue: name, payload: {} });
    await page.goto(`${server.url}/ui/queues`);
    await page.click(`button[aria-label="Pause queue ${name}"]`);
    await page.waitForSelector(`tr[data-queue="${name}"] .state-paused`);
    assert.equal(await paused(name), true, `queue ${name}`);
  }
  await assertClean(page, 'pause . and ..');
  await page.close();
});

test('a cross-site POST is refused and changes nothing', async () => {
  await enqueue(server.url, { kind: 'nobody-runs-this', queue: 'target', payload: {} });
  // Another site, on another port: a page with a form that posts to errand.
  const evil = createServer((req, res) => {
    res.setHeader('content-type', 'text/html');
    res.end(`<!doctype html><form method="post" action="${server.url}/ui/queues/pause?queue=target">
      <input name="x" value="1"><button id="go">Win a prize</button></form>
      <form method="post" enctype="text/plain" action="${server.url}/ui/dead/purge?scope=queue&amp;queue=target">
      <input name="x" value="1"><button id="go2">Win another</button></form>`);
  });
  await new Promise((r) => evil.listen(0, '127.0.0.1', r));
  const evilUrl = `http://127.0.0.1:${evil.address().port}/`;
  try {
    const page = await newPage(browser);
    for (const button of ['#go', '#go2']) {
      await page.goto(evilUrl);
      const [response] = await Promise.all([
        page.waitForResponse((r) => r.url().startsWith(server.url)),
        page.click(button),
      ]);
      assert.equal(response.status(), 403, `${button}: ${await response.text()}`);
      assert.match(await response.text(), /cross_origin/);
    }
    await shot(page, 'cross-site-refused');
    // From errand's own page, without the page's token, a POST is refused too.
    await page.goto(`${server.url}/ui/queues`);
    const status = await page.evaluate(async () => {
      const r = await fetch('/ui/queues/pause?queue=target', { method: 'POST' });
      return [r.status, (await r.json()).error.code];
    });
    assert.deepEqual(status, [403, 'csrf']);
    assert.equal((await api(server.url, 'GET', '/v1/queues/target')).body.paused, false);
    await page.close();
  } finally {
    evil.close();
  }
});

test('a schedule is run now, paused and backfilled from the schedules page', async () => {
  const created = await api(server.url, 'POST', '/v1/schedules', {
    name: 'hourly-<b>x</b>'.replace(/[<>/]/g, '-'),
    every: '1h',
    job: { kind: 'nobody-runs-this', queue: 'scheduled-q', payload: {} },
    overlap: 'allow',
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const name = created.body.name;
  const page = await newPage(browser);
  const dialogs = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.accept(); });
  await page.goto(`${server.url}/ui/schedules`);
  const row = `tr[data-schedule="${name}"]`;
  // Three next runs, an hour apart.
  assert.equal(await page.locator(`${row} td:nth-child(4) time`).count(), 3);
  await page.click(`button[aria-label="Run schedule ${name} now"]`);
  await page.waitForSelector(`${row} a.id`);
  // The live refresh may show the run's job before the action's answer (and its flash)
  // is swapped in: wait for the flash itself.
  await page.waitForSelector('#flash:has-text("job ")');
  const jobs = await api(server.url, 'GET', '/v1/jobs?queue=scheduled-q');
  assert.equal(jobs.body.jobs.length, 1);
  assert.match(await page.textContent('#flash'), new RegExp(`job ${jobs.body.jobs[0].id}`));
  await page.click(`button[aria-label="Pause schedule ${name}"]`);
  await page.waitForSelector(`${row} .state-paused`);
  assert.equal((await api(server.url, 'GET', `/v1/schedules/${name}`)).body.paused, true);
  // Backfill the slots of the last three hours (from, to]: three, typed as UTC.
  const utc = (ms) => new Date(ms).toISOString().slice(0, 16);
  const hour = 3600 * 1000;
  const top = Math.floor(Date.now() / hour) * hour;
  await page.click(`${row} summary`);
  await page.fill(`${row} input[name="from"]`, utc(top - 3 * hour + 60000));
  await page.fill(`${row} input[name="to"]`, utc(top));
  await page.click(`${row} form button[type="submit"]`);
  await page.waitForSelector('#flash:has-text("Backfilled")');
  assert.match(await page.textContent('#flash'), /Backfilled .*: 3 jobs/);
  assert.equal(dialogs.length, 2, `confirmations: ${dialogs}`);
  await shot(page, 'schedules');
  await assertClean(page, 'schedules');
  await page.close();
});
