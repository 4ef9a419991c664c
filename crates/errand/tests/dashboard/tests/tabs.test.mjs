// Many tabs: errand speaks HTTP/1 and a browser allows six connections per host across
// every tab, so a tab holds one live stream (a job's page too: its log comes over the same
// stream) and none while hidden. Eight open tabs leave room for a ninth and its actions.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { api, assertClean, enqueue, launch, startServer } from './harness.mjs';

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

/** A tab in `context` at `path`, its live stream open. Fails if the page cannot load. */
async function tab(context, path) {
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (err) => page.problems.push(`exception: ${err.message}`));
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('errand:liveOpen', () => { window.__sseOpen = true; });
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective));
  });
  // A page starved of connections never loads; 10 s is long past any load here.
  await page.goto(server.url + path, { timeout: 10000 });
  await page.waitForFunction(() => window.__sseOpen === true, null, { timeout: 10000 });
  return page;
}

/** What the browser does when the user switches to another tab, or back. */
async function setHidden(page, hidden) {
  await page.evaluate((h) => {
    Object.defineProperty(document, 'hidden', { value: h, configurable: true });
    Object.defineProperty(document, 'visibilityState', { value: h ? 'hidden' : 'visible', configurable: true });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

test('eight open tabs leave room for a ninth page and its action', async () => {
  const job = await enqueue(server.url, { kind: 'nobody-runs-this', queue: 'tabs', payload: {} });
  const context = await browser.newContext();
  try {
    const tabs = [];
    // Five job pages, all visible: one stream each is five of the six connections (with a
    // second stream for the log, the fourth page would never load).
    for (let i = 0; i < 5; i++) tabs.push(await tab(context, `/ui/jobs/${job.id}`));
    // The user moves on: hidden tabs give their connections back.
    for (const t of tabs) await setHidden(t, true);
    tabs.push(await tab(context, '/ui/queues'));
    tabs.push(await tab(context, '/'));
    tabs.push(await tab(context, '/ui/dead'));
    assert.equal(tabs.length, 8);
    // The ninth page loads, and its action works.
    const ninth = await tab(context, '/ui/queues');
    await ninth.click('button[aria-label="Pause queue tabs"]');
    await ninth.waitForSelector('tr[data-queue="tabs"] .state-paused', { timeout: 10000 });
    assert.equal((await api(server.url, 'GET', '/v1/queues/tabs')).body.paused, true);
    // A tab shown again catches up on what changed while it was hidden, without a reload.
    const queues = tabs[5];
    await setHidden(queues, true);
    await enqueue(server.url, { kind: 'nobody-runs-this', queue: 'while-hidden', payload: {} });
    await setHidden(queues, false);
    await queues.waitForSelector('tr[data-queue="while-hidden"]', { timeout: 10000 });
    for (const t of [...tabs, ninth]) await assertClean(t, `tab ${t.url()}`);
  } finally {
    await context.close();
  }
});
