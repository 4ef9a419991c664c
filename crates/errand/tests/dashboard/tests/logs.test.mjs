// A running script's log lines arrive on its job's page live, as text.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import {
  addDefinition, api, assertClean, assertNotReloaded, enqueue, fifo, jobState, launch, markDocument,
  newPage, shot, startServer, tempDir, until,
} from './harness.mjs';

let server;
let browser;
let jobsDir;
let pipe;
let finish;

before(async () => {
  jobsDir = tempDir('jobs');
  pipe = fifo(join(jobsDir, 'pipe'));
  finish = fifo(join(jobsDir, 'finish'));
  // Prints a line, waits for the test to write a word into one pipe, prints it, and waits
  // for a word in another before it ends: the test sees the second line while the run
  // goes on.
  addDefinition(jobsDir, 'talker', `[env]\nPIPE = "${pipe}"\nFINISH = "${finish}"\n`,
    '#!/bin/bash\necho "first line"\nread -r word < "$PIPE"\necho "second line: $word <b>not bold</b>"\necho "on stderr" >&2\nread -r _ < "$FINISH"\nexit 0\n');
  addDefinition(jobsDir, 'chatty', '', '#!/bin/bash\nfor i in $(seq 1 5100); do echo "line $i"; done\n');
  server = await startServer(['--jobs-dir', jobsDir]);
  await until('definition talker loaded', async () => {
    const r = await api(server.url, 'GET', '/v1/definitions');
    return r.body.definitions && r.body.definitions.some((d) => d.name === 'talker');
  });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(jobsDir, { recursive: true, force: true });
});

test('a log line of a running script arrives live, escaped', async () => {
  const job = await enqueue(server.url, { kind: 'talker', queue: 'default', payload: {} });
  await jobState(server.url, job.id, 'running');
  const page = await newPage(browser);
  await page.goto(`${server.url}/ui/jobs/${job.id}`);
  await page.waitForSelector('#log li:has-text("first line")');
  assert.equal(await page.locator('#log li:has-text("second line")').count(), 0);
  await markDocument(page);
  // The script cannot print its second line before this write.
  await writeFile(pipe, 'hello\n');
  await page.waitForSelector('#log li:has-text("second line: hello")');
  assert.match(await page.textContent('#log'), /second line: hello <b>not bold<\/b>/);
  assert.equal(await page.locator('#log b').count(), 0, 'a log line became markup');
  await page.waitForSelector('#log li.err:has-text("on stderr")');
  // Seen while the script still runs (it waits for the next word).
  assert.equal((await api(server.url, 'GET', `/v1/jobs/${job.id}`)).body.state, 'running');
  await writeFile(finish, 'bye\n');
  // The end of the run shows too, and no line came twice.
  await page.waitForSelector('.job-head .state-succeeded');
  // (stdout and stderr are separate pipes: their lines may interleave either way.)
  const lines = await page.locator('#log li .text').allTextContents();
  assert.deepEqual(lines.sort(), ['first line', 'on stderr', 'second line: hello <b>not bold</b>']);
  await assertNotReloaded(page);
  await shot(page, 'live-log');
  await assertClean(page, 'live log');
  await page.close();
});

test('a long log keeps its last 5,000 lines and says it trimmed the rest', async () => {
  const job = await enqueue(server.url, { kind: 'chatty', queue: 'default', payload: {} });
  await jobState(server.url, job.id, 'succeeded');
  const page = await newPage(browser);
  // The page shows the first lines; the rest arrive over its stream, then are trimmed.
  await page.goto(`${server.url}/ui/jobs/${job.id}`);
  await page.waitForSelector('#log li.line:last-child:has-text("line 5100")');
  assert.equal(await page.locator('#log li.line').count(), 5000);
  assert.match(await page.textContent('#log li.trimmed'), /Earlier lines trimmed/);
  assert.equal(await page.locator('#log li.line .text').first().textContent(), 'line 101');
  await assertClean(page, 'long log');
  await page.close();
});
