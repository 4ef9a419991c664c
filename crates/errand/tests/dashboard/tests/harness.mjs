// What every dashboard browser test needs: a real `errand serve` (the binary in
// ERRAND_BIN) on a fresh data directory, optionally with a jobs directory; headless Debian
// Chromium driven by playwright-core (never a downloaded browser); a page that records
// console errors and Content-Security-Policy violations; screenshots under
// ERRAND_DASHBOARD_ARTIFACTS.

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const BIN = process.env.ERRAND_BIN;
const CHROMIUM = process.env.ERRAND_CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.ERRAND_DASHBOARD_ARTIFACTS || join(process.cwd(), 'artifacts');

/** A temporary directory, removed by `cleanup`. */
export function tempDir(prefix) {
  return mkdtempSync(join(tmpdir(), `errand-dash-${prefix}-`));
}

/** Writes `<dir>/<name>/job.toml` and an executable `run.sh`. */
export function addDefinition(dir, name, jobToml, script) {
  const folder = join(dir, name);
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'job.toml'), jobToml);
  writeFileSync(join(folder, 'run.sh'), script);
  chmodSync(join(folder, 'run.sh'), 0o755);
  return folder;
}

/** A named pipe at `path`: a script reading it waits until the test writes. */
export function fifo(path) {
  execFileSync('mkfifo', [path]);
  return path;
}

/**
 * Starts `errand serve` on a free loopback port; resolves once it printed its address.
 * `args` are extra flags (`--jobs-dir DIR`).
 */
export async function startServer(args = []) {
  assert.ok(BIN, 'ERRAND_BIN must name the errand binary');
  const data = tempDir('data');
  const child = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', data, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' },
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const lines = createInterface({ input: child.stdout });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`errand did not start in 30 s:\n${stderr}`)), 30000);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`errand exited (${code}):\n${stderr}`)); });
    lines.on('line', (line) => {
      const m = /^errand listening on (http:\/\/\S+)/.exec(line);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
  });
  child.removeAllListeners('exit');
  return {
    url,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 10000);
        await exited;
        clearTimeout(killer);
      }
      rmSync(data, { recursive: true, force: true });
    },
  };
}

/** Calls errand's JSON API; resolves to `{ status, body }`. */
export async function api(base, method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: body === undefined ? { accept: 'application/json' } : { 'content-type': 'application/json', accept: 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: res.status, body: json };
}

/** Enqueues a job; resolves to it. */
export async function enqueue(base, job) {
  const r = await api(base, 'POST', '/v1/jobs', job);
  assert.ok(r.status === 201 || r.status === 200, `enqueue: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Waits until `check()` resolves truthy (an API state the test waits on); its value. */
export async function until(what, check, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until a job reaches `state`. */
export function jobState(base, id, state, timeoutMs = 30000) {
  return until(`job ${id} ${state}`, async () => {
    const r = await api(base, 'GET', `/v1/jobs/${id}`);
    return r.body && r.body.state === state ? r.body : null;
  }, timeoutMs);
}

/** Headless Chromium from the system (never downloaded). */
export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  });
}

/**
 * A new page that records console errors, uncaught exceptions and CSP violations into
 * `page.problems`. `viewport` defaults to 1280 x 800.
 */
export async function newPage(browser, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') page.problems.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => page.problems.push(`exception: ${err.message}`));
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('errand:liveOpen', () => { window.__sseOpen = true; });
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
    });
  });
  return page;
}

/**
 * Fails the test if the page saw a console error, an exception or a CSP violation, then
 * forgets what it saw. `expected404` allows the one error Chromium logs for a document
 * answered with 404 (the not-found page).
 */
export async function assertClean(page, what, { expected404 = false } = {}) {
  const csp = await page.evaluate(() => window.__csp || []);
  let problems = [...page.problems, ...csp.map((c) => `csp: ${c}`)];
  page.problems.length = 0;
  if (expected404) {
    const i = problems.findIndex((p) => /status of 404/.test(p));
    if (i >= 0) problems.splice(i, 1);
  }
  assert.deepEqual(problems, [], `${what}: problems in the browser`);
}

/** Saves a screenshot of the page as `<name>.png` in the artifacts directory. */
export async function shot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/**
 * Marks the document so a test can tell that what it sees came live, not from a reload
 * (a reload loses the mark).
 */
export async function markDocument(page) {
  await page.evaluate(() => { window.__notReloaded = true; });
}

export async function assertNotReloaded(page) {
  assert.equal(await page.evaluate(() => window.__notReloaded === true), true, 'the page was reloaded');
}
