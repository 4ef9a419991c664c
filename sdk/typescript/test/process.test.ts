/**
 * Whole processes: SIGTERM to a worker process in the middle of work, and a server restart
 * under a running worker. Nothing may be lost.
 */

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { describe, test } from "node:test";

import { type ErrandClient, type Job, Worker } from "../src/index.js";
import { PACKAGE_DIR, Server, eventually, queueName, stopChild, track, withServer } from "./harness.js";

/** The example worker (examples/worker.ts) as a child process. */
function spawnWorker(url: string, queue: string, env: Record<string, string>): { child: ChildProcess; output: () => string } {
  return spawnExample("worker.js", { ERRAND_URL: url, ERRAND_QUEUE: queue, ...env });
}

/** An example program as a child process, its output collected. */
function spawnExample(file: string, env: Record<string, string>): { child: ChildProcess; output: () => string } {
  let output = "";
  const child = track(
    spawn(process.execPath, [join(PACKAGE_DIR, "dist-test", "examples", file)], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
  child.stdout!.on("data", (chunk) => (output += String(chunk)));
  child.stderr!.on("data", (chunk) => (output += String(chunk)));
  return { child, output: () => output };
}

/** Waits for a child to exit; resolves with its exit code. */
function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

/** Every job of a queue (up to 1,000), read one by one from the ids given. */
async function jobs(client: ErrandClient, ids: string[]): Promise<Job[]> {
  return Promise.all(ids.map((id) => client.getJob(id)));
}

/** Queue counts in one state. */
async function count(client: ErrandClient, queue: string, state: Job["state"]): Promise<number> {
  return (await client.getQueue(queue)).counts[state] ?? 0;
}

describe("processes", () => {
  test("the example application: the web handler enqueues, the worker process runs it", async () => {
    await withServer(async (server) => {
      const web = spawnExample("web.js", { ERRAND_URL: server.url, PORT: "0" });
      const worker = spawnWorker(server.url, "mail", { ERRAND_CONCURRENCY: "2" });
      try {
        const port = await eventually("the web example to listen", () => /web example on http:\/\/127\.0\.0\.1:(\d+)/.exec(web.output())?.[1], 20_000);
        const signup = async (): Promise<{ job: string }> => {
          const res = await fetch(`http://127.0.0.1:${port}/signup`, { method: "POST", body: JSON.stringify({ user: 7, email: "ada@example.com" }) });
          assert.equal(res.status, 202);
          return (await res.json()) as { job: string };
        };
        const first = await signup();
        const again = await signup();
        assert.equal(again.job, first.job, "the same sign-up twice is one job (idempotency key)");
        const res = await fetch(`http://127.0.0.1:${port}/jobs/${first.job}?wait=1`);
        const shown = (await res.json()) as { state: string; result: unknown };
        assert.equal(shown.state, "succeeded", web.output() + worker.output());
        assert.deepEqual(shown.result, { sent: true, user: 7 });
        const bad = await fetch(`http://127.0.0.1:${port}/signup`, { method: "POST", body: JSON.stringify({ user: 8, email: "nope" }) });
        const badJob = ((await bad.json()) as { job: string }).job;
        const dead = (await (await fetch(`http://127.0.0.1:${port}/jobs/${badJob}?wait=1`)).json()) as { state: string; error: string };
        assert.equal(dead.state, "dead", "a bad address is not retried");
        assert.match(dead.error, /not an e-mail address/);
      } catch (error) {
        console.error(`--- web example ---\n${web.output()}\n--- worker example ---\n${worker.output()}`);
        throw error;
      } finally {
        await stopChild(web.child);
        await stopChild(worker.child);
      }
    });
  });

  test("SIGTERM in the middle of work: running jobs finish within the grace period, nothing is lost", async () => {
    await withServer(async (server) => {
      const client = server.client();
      const queue = queueName("sigterm");
      const answer = await client.enqueueMany(
        Array.from({ length: 30 }, (_, user) => ({ kind: "send_welcome_email", queue, payload: { user, work_ms: 300 } })),
      );
      const ids = answer.jobs.map((j) => j.id);
      const first = spawnWorker(server.url, queue, { ERRAND_CONCURRENCY: "4", ERRAND_GRACE_MS: "10000" });
      try {
        await eventually("some jobs to succeed and others to run", async () => {
          return (await count(client, queue, "succeeded")) >= 4 && (await count(client, queue, "running")) > 0;
        });
        first.child.kill("SIGTERM");
        assert.equal(await exited(first.child), 0, first.output());
      } finally {
        await stopChild(first.child);
      }
      assert.match(first.output(), /worker stopped/);
      // What ran when the signal came finished: nothing is left running or given back.
      const left = (await jobs(client, ids)).filter((j) => j.state === "running").map((j) => [j.id, j.started_at]);
      assert.deepEqual(left, [], `no job left running after a clean stop (worker said: ${first.output()})`);
      const afterFirst = await jobs(client, ids);
      const done = afterFirst.filter((j) => j.state === "succeeded").length;
      assert.ok(done >= 4 && done < 30, `the stop came in the middle of the work (${done} done)`);

      const second = spawnWorker(server.url, queue, { ERRAND_CONCURRENCY: "8" });
      try {
        await eventually("every job to succeed", async () => (await count(client, queue, "succeeded")) === 30);
      } finally {
        await stopChild(second.child);
      }
      const all = await jobs(client, ids);
      assert.deepEqual(all.filter((j) => j.state !== "succeeded" || j.attempt !== 1).map((j) => [j.id, j.state, j.attempt]), []);
    });
  });

  test("SIGTERM with jobs longer than the grace period: they are given back at once and finish elsewhere", async () => {
    await withServer(async (server) => {
      const client = server.client();
      const queue = queueName("giveback");
      const answer = await client.enqueueMany(
        // Each on its only attempt: a give-back that counted the attempt would make it dead.
        Array.from({ length: 6 }, (_, user) => ({ kind: "send_welcome_email", queue, payload: { user, work_ms: 60_000 }, max_attempts: 1 })),
      );
      const ids = answer.jobs.map((j) => j.id);
      // A lease of 60 s: a job that was not given back would wait that long.
      const first = spawnWorker(server.url, queue, { ERRAND_CONCURRENCY: "4", ERRAND_GRACE_MS: "300", ERRAND_LEASE_MS: "60000" });
      try {
        await eventually("four jobs to run", async () => (await count(client, queue, "running")) === 4);
        const signalled = Date.now();
        first.child.kill("SIGTERM");
        assert.equal(await exited(first.child), 0, first.output());
        assert.ok(Date.now() - signalled < 10_000, "the worker stopped soon after the grace period");
        assert.match(first.output(), /"givenBack":4/, "the worker counted four given back");
      } finally {
        await stopChild(first.child);
      }
      assert.equal(await count(client, queue, "running"), 0, "the running jobs were given back");
      assert.equal(await count(client, queue, "dead"), 0, "uncounted: none died on its only attempt");
      assert.equal(await count(client, queue, "available"), 6, "given back as available at once");
      const back = await jobs(client, ids);
      assert.deepEqual(back.map((j) => j.attempt), [0, 0, 0, 0, 0, 0], "the given-back attempts are forgotten");

      const second = spawnWorker(server.url, queue, { ERRAND_CONCURRENCY: "6", ERRAND_WORK_MS: "20" });
      try {
        await eventually("every job to succeed", async () => (await count(client, queue, "succeeded")) === 6, 20_000);
      } finally {
        await stopChild(second.child);
      }
      const all = await jobs(client, ids);
      assert.deepEqual(all.map((j) => [j.state, j.attempt]), Array.from({ length: 6 }, () => ["succeeded", 1]), "each succeeded on its first counted attempt");
    });
  });

  test("a second SIGTERM during the shutdown exits at once", async () => {
    await withServer(async (server) => {
      const client = server.client();
      const queue = queueName("twice");
      await client.enqueue({ kind: "send_welcome_email", queue, payload: { user: 1, work_ms: 60_000 } });
      const worker = spawnWorker(server.url, queue, { ERRAND_CONCURRENCY: "1", ERRAND_GRACE_MS: "20000" });
      try {
        await eventually("the job to run", async () => (await count(client, queue, "running")) === 1);
        worker.child.kill("SIGTERM");
        // The first signal's shutdown now waits up to 20 s for the running job.
        await new Promise((r) => setTimeout(r, 300));
        const signalled = Date.now();
        worker.child.kill("SIGTERM");
        assert.equal(await exited(worker.child), 143, worker.output());
        assert.ok(Date.now() - signalled < 3_000, "exited soon after the second signal");
      } finally {
        await stopChild(worker.child);
      }
    });
  });

  test("a server restart while the worker runs: it reconnects and finishes every job", async () => {
    const server = await Server.start();
    const errors: unknown[] = [];
    let worker: Worker | undefined;
    let running: Promise<void> | undefined;
    try {
      const client = server.client();
      const queue = queueName("restart");
      const total = 300;
      const answer = await client.enqueueMany(
        Array.from({ length: total }, (_, n) => ({ kind: "step", queue, payload: { n } })),
      );
      const ids = answer.jobs.map((j) => j.id);
      const handled = new Set<string>();
      worker = new Worker({
        client,
        queue,
        concurrency: 8,
        leaseMs: 2_000,
        claimWaitMs: 1_000,
        reconnect: { baseMs: 50, maxMs: 500 },
        onEvent: (e) => {
          if ("error" in e) errors.push(e.error);
        },
        handlers: {
          step: async (ctx) => {
            await new Promise((r) => setTimeout(r, 10));
            handled.add(ctx.id);
            return { n: (ctx.payload as { n: number }).n };
          },
        },
      });
      running = worker.run({ handleSignals: false });
      await eventually("some jobs to succeed", async () => (await count(client, queue, "succeeded")) >= 40);
      await server.restart({ downMs: 500 });
      await eventually("every job to succeed after the restart", async () => (await count(client, queue, "succeeded")) === total, 60_000, 100);
      const all = await jobs(client, ids);
      assert.ok(all.every((j) => j.state === "succeeded"));
      assert.equal(handled.size, total);
      assert.ok(errors.length > 0, "the worker saw the server go away (and carried on)");
      assert.ok(worker.stats.claims > 0);
    } catch (error) {
      console.error(`--- errand server log (tail) ---\n${server.log()}`);
      throw error;
    } finally {
      await worker?.stop();
      await running;
      await server.close();
    }
  });
});
