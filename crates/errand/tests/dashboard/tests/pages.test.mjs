// Every page loads with no console error and no CSP violation, at desktop and phone width;
// a job is found by its id from the search box; values from jobs are shown as text.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import {
  addDefinition, api, assertClean, enqueue, jobState, launch, newPage, shot, startServer, tempDir, until,
} from './harness.mjs';

let server;
let browser;
let jobsDir;
let dead;
let plain;
let hostile;
let workflow;
let batch;
let instance;
let subscription;

const HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">';

before(async () => {
  jobsDir = tempDir('jobs');
  addDefinition(jobsDir, 'fails', 'max_attempts = 1\n', '#!/bin/bash\necho "about to fail <b>loudly</b>"\necho "boom <script>x()</script>" >&2\nexit 3\n');
  addDefinition(jobsDir, 'looper', 'mode = "continuous"\n', '#!/bin/bash\necho "<b>looping</b>"\nexec sleep 600\n');
  server = await startServer([
    '--jobs-dir', jobsDir,
    '--webhook-secret', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', '--allow-private-callbacks',
  ]);
  await until('instance of looper', async () => {
    const r = await api(server.url, 'GET', '/v1/definitions/looper');
    instance = r.body.instances && r.body.instances[0] && r.body.instances[0].instance;
    return Boolean(instance);
  });
  await until('definition fails loaded', async () => {
    const r = await api(server.url, 'GET', '/v1/definitions');
    return r.body.definitions && r.body.definitions.some((d) => d.name === 'fails');
  });
  dead = await enqueue(server.url, { kind: 'fails', queue: 'default', payload: { n: 1 }, max_attempts: 1 });
  await jobState(server.url, dead.id, 'dead');
  plain = await enqueue(server.url, { kind: 'email', queue: 'mail', payload: { to: 'a@example.com' }, tags: ['welcome'] });
  hostile = await enqueue(server.url, {
    kind: '<i>kind</i>',
    queue: 'hostile',
    payload: { html: HOSTILE },
    tags: ['<u>tag</u>'],
  });
  workflow = (await api(server.url, 'POST', '/v1/workflows', {
    name: '<i>wf</i>',
    steps: [
      { name: 'first', job: { kind: 'email', queue: 'wf', payload: {} } },
      { name: 'second', job: { kind: 'email', queue: 'wf', payload: {} }, depends_on: ['first'] },
    ],
  })).body;
  batch = (await api(server.url, 'POST', '/v1/batches', {
    open: true,
    jobs: [{ kind: 'email', queue: 'batch', payload: {} }],
    on_complete: { kind: '<i>done</i>', queue: 'batch' },
  })).body;
  await enqueue(server.url, { kind: 'email', queue: 'ordered', payload: {}, session_key: '<i>session</i>' });
  subscription = (await api(server.url, 'POST', '/v1/subscriptions', {
    url: 'http://127.0.0.1:9/hook',
    events: ['job.enqueued'],
    description: '<i>hook</i>',
  })).body;
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(jobsDir, { recursive: true, force: true });
});

const PAGES = () => [
  ['overview', '/'],
  ['queues', '/ui/queues'],
  ['jobs', '/ui/jobs'],
  ['jobs-filtered', '/ui/jobs?queue=mail&state=available&tag=welcome'],
  ['job', `/ui/jobs/${plain.id}`],
  ['job-dead', `/ui/jobs/${dead.id}`],
  ['dead', '/ui/dead'],
  ['dead-queue', '/ui/dead?queue=default'],
  ['schedules', '/ui/schedules'],
  ['batches', '/ui/batches'],
  ['batch', `/ui/batches/${batch.batch.id}`],
  ['definitions', '/ui/definitions'],
  ['instance-log', `/ui/definitions/looper/instances/${instance}/logs`],
  ['sessions', '/ui/sessions'],
  ['subscriptions', '/ui/subscriptions'],
  ['subscription', `/ui/subscriptions/${subscription.id}`],
  ['nodes', '/ui/nodes'],
  ['workflows', '/ui/workflows'],
  ['workflow', `/ui/workflows/${workflow.id}`],
  ['not-found', '/ui/no-such-page'],
];

// Pages that open no stream: the not-found page, and pages whose data changes without an
// event, which refresh every few seconds instead (live.test.mjs).
const STATIC = new Set(['not-found', 'instance-log', 'subscriptions', 'subscription', 'nodes']);

test('every page loads with no console error or CSP violation', async () => {
  const page = await newPage(browser);
  for (const [name, path] of PAGES()) {
    const res = await page.goto(server.url + path);
    assert.equal(res.status(), name === 'not-found' ? 404 : 200, `${path} status`);
    const headers = res.headers();
    assert.match(headers['content-security-policy'], /script-src 'self'/, `${path} CSP`);
    assert.equal(headers['x-content-type-options'], 'nosniff');
    if (!STATIC.has(name)) {
      // The page's live stream is open.
      await page.waitForFunction(() => window.__sseOpen === true);
    }
    if (name === 'overview') {
      // The charts drew from /ui/series.
      await page.waitForSelector('#charts[data-loaded] canvas');
    }
    await shot(page, `page-${name}`);
    await assertClean(page, path, { expected404: name === 'not-found' });
  }
  // The dead job's page shows the failure and the attempt, escaped.
  await page.goto(`${server.url}/ui/jobs/${dead.id}`);
  assert.match(await page.textContent("#error"), /\bexit code 3\b/);
  assert.equal(await page.locator('#log b').count(), 0, 'a log line is text, not markup');
  assert.match(await page.textContent('#log'), /about to fail <b>loudly<\/b>/);
  await assertClean(page, 'dead job page');
  await page.close();
});

test('pages fit a phone-width screen: tables scroll, the page does not', async () => {
  const page = await newPage(browser, { width: 390, height: 844 });
  for (const [name, path] of PAGES()) {
    await page.goto(server.url + path);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${path} is ${overflow}px wider than the screen`);
    await shot(page, `phone-${name}`);
    await assertClean(page, `${path} at phone width`, { expected404: name === 'not-found' });
  }
  await page.close();
});

test('a job is found by its id from the search box ("/" focuses it)', async () => {
  const page = await newPage(browser);
  await page.goto(server.url + '/');
  await page.keyboard.press('/');
  assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.id), 'find-job');
  await page.keyboard.type(plain.id);
  await Promise.all([page.waitForURL(`**/ui/jobs/${plain.id}`), page.keyboard.press('Enter')]);
  assert.match(await page.textContent('h1'), new RegExp(plain.id));
  assert.match(await page.textContent('#job-live'), /email/);
  await shot(page, 'find-by-id');
  // Something that is not an id says so on the jobs page.
  await page.goto(server.url + '/ui/jobs?id=not-an-id');
  assert.match(await page.textContent('.problem'), /not-an-id|job id|uuid/i);
  await assertClean(page, 'find by id');
  await page.close();
});

test('a payload, kind and tag holding markup are shown as text', async () => {
  const page = await newPage(browser);
  await page.goto(`${server.url}/ui/jobs/${hostile.id}`);
  const payload = await page.textContent('#payload');
  assert.ok(payload.includes('<script>window.__pwned = 1</script>'), payload);
  assert.equal(await page.locator('#payload script, #payload img').count(), 0);
  assert.match(await page.textContent('#job-live'), /<i>kind<\/i>/);
  assert.match(await page.textContent('#job-live'), /<u>tag<\/u>/);
  await page.goto(`${server.url}/ui/jobs?queue=hostile`);
  assert.equal(await page.locator('table.jobs i, table.jobs u').count(), 0);
  assert.match(await page.textContent('table.jobs'), /<i>kind<\/i>/);
  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'a script from the payload ran');
  await shot(page, 'hostile-payload');
  await assertClean(page, 'hostile payload');
  await page.close();
});
