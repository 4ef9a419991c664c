/** The worker against a real server: throughput with exactly-once, retries, dead jobs, leases. */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  type ErrandClient,
  type Job,
  type JobContext,
  NonRetryableError,
  Worker,
  type WorkerEvent,
  type WorkerOptions,
} from "../src/index.js";
import { Server, eventually, queueName } from "./harness.js";

/** Starts a worker; `stop()` stops it and waits for it to finish. */
function startWorker(options: WorkerOptions): { worker: Worker; stop: () => Promise<void> } {
  const worker = new Worker({ claimWaitMs: 1_000, ...options });
  const running = worker.run({ handleSignals: false });
  return {
    worker,
    stop: async () => {
      await worker.stop();
      await running;
    },
  };
}

/** The queue's count of jobs in a state. */
async function count(client: ErrandClient, queue: string, state: Job["state"]): Promise<number> {
  const info = await client.getQueue(queue);
  return info.counts[state] ?? 0;
}

describe("worker", () => {
  let server: Server;
  let client: ErrandClient;

  before(async () => {
    server = await Server.start();
    client = server.client();
  });
  after(async () => {
    await server?.close();
  });

  test("1,000 jobs at concurrency 16: every job done exactly once", async () => {
    const queue = queueName("thousand");
    const total = 1_000;
    for (let start = 0; start < total; start += 250) {
      const jobs = Array.from({ length: 250 }, (_, i) => ({ kind: "count", queue, payload: { n: start + i } }));
      await client.enqueueMany(jobs);
    }
    const runs = new Map<string, number>();
    let inFlight = 0;
    let peak = 0;
    const { stop } = startWorker({
      client,
      queue,
      concurrency: 16,
      handlers: {
        count: async (ctx: JobContext<{ n: number }>) => {
          inFlight += 1;
          peak = Math.max(peak, inFlight);
          runs.set(ctx.id, (runs.get(ctx.id) ?? 0) + 1);
          // Uneven durations, so slots free at different times and claims ask for 1 to 16.
          await new Promise((r) => setTimeout(r, (ctx.payload.n * 37) % 61));
          inFlight -= 1;
          return { n: ctx.payload.n };
        },
      },
    });
    try {
      await eventually("all 1,000 jobs to succeed", async () => (await count(client, queue, "succeeded")) === total, 120_000, 100);
    } finally {
      await stop();
    }
    assert.equal(runs.size, total, "every job ran");
    assert.deepEqual([...runs.values()].filter((n) => n !== 1), [], "no job ran twice");
    assert.ok(peak <= 16, `at most 16 at once (saw ${peak})`);
    const info = await client.getQueue(queue);
    assert.equal(info.counts.succeeded, total);
    assert.equal(info.counts.running + info.counts.available + info.counts.scheduled + info.counts.dead, 0);
  });

  test("a handler that fails once is retried with the server's backoff, and succeeds", async () => {
    const queue = queueName("retry");
    // A small queue backoff, so the server's retry comes quickly.
    await client.updateQueue(queue, { backoff: { base: 50, max: 200 } });
    const job = await client.enqueue({ kind: "flaky", queue, max_attempts: 3 });
    const attempts: number[] = [];
    const { stop } = startWorker({
      client,
      queue,
      concurrency: 2,
      onEvent: () => undefined,
      handlers: {
        flaky: (ctx) => {
          attempts.push(ctx.attempt);
          if (ctx.attempt === 1) throw new Error("transient trouble");
          return { ok: true };
        },
      },
    });
    try {
      const done = await client.waitForJob(job.id, { timeoutMs: 20_000 });
      assert.equal(done.state, "succeeded");
      assert.equal(done.attempt, 2);
      assert.deepEqual(done.result, { ok: true });
      assert.deepEqual(attempts, [1, 2]);
    } finally {
      await stop();
    }
  });

  test("a non-retryable error makes the job dead at once, with the error message", async () => {
    const queue = queueName("dead");
    const job = await client.enqueue({ kind: "doomed", queue, max_attempts: 5 });
    let runs = 0;
    const { stop } = startWorker({
      client,
      queue,
      onEvent: () => undefined,
      handlers: {
        doomed: () => {
          runs += 1;
          throw new NonRetryableError("bad input, retrying cannot help");
        },
      },
    });
    try {
      const done = await client.waitForJob(job.id, { timeoutMs: 20_000 });
      assert.equal(done.state, "dead");
      assert.equal(done.attempt, 1);
      assert.match(done.error ?? "", /bad input, retrying cannot help/);
      assert.equal(runs, 1);
    } finally {
      await stop();
    }
  });

  test("a job longer than its lease keeps it through heartbeats and succeeds once", async () => {
    const queue = queueName("long");
    const job = await client.enqueue({ kind: "long", queue });
    let runs = 0;
    const events: WorkerEvent[] = [];
    const { stop } = startWorker({
      client,
      queue,
      leaseMs: 1_000,
      onEvent: (e) => events.push(e),
      handlers: {
        long: async (ctx) => {
          runs += 1;
          for (let step = 1; step <= 3; step += 1) {
            await new Promise((r) => setTimeout(r, 1_000));
            ctx.throwIfAborted();
            await ctx.progress(step * 33, `step ${step}`);
          }
          return { steps: 3 };
        },
      },
    });
    try {
      const done = await client.waitForJob(job.id, { timeoutMs: 20_000 });
      assert.equal(done.state, "succeeded", `job ended ${done.state}: ${done.error}`);
      assert.equal(done.attempt, 1, "the lease never lapsed");
      assert.equal(runs, 1);
      assert.deepEqual(done.result, { steps: 3 });
      assert.equal(done.progress?.percent, 99);
      assert.deepEqual(events.filter((e) => e.type === "lease_lost" || e.type === "heartbeat_error"), []);
    } finally {
      await stop();
    }
  });

  test("a checkpoint saved by a failed attempt is handed to the next one", async () => {
    const queue = queueName("checkpoint");
    await client.updateQueue(queue, { backoff: { base: 50, max: 100 } });
    const job = await client.enqueue({ kind: "resumable", queue, max_attempts: 2 });
    const seen: unknown[] = [];
    const { stop } = startWorker({
      client,
      queue,
      onEvent: () => undefined,
      handlers: {
        resumable: async (ctx) => {
          seen.push(ctx.checkpoint ?? null);
          if (ctx.attempt === 1) {
            await ctx.saveCheckpoint({ row: 500 });
            throw new Error("crashed halfway");
          }
          return { resumedFrom: ctx.checkpoint ?? null };
        },
      },
    });
    try {
      const done = await client.waitForJob(job.id, { timeoutMs: 20_000 });
      assert.equal(done.state, "succeeded");
      assert.deepEqual(seen, [null, { row: 500 }]);
      assert.deepEqual(done.result, { resumedFrom: { row: 500 } });
    } finally {
      await stop();
    }
  });

  test("cancelling a running job aborts its handler's signal and settles nothing", async () => {
    const queue = queueName("cancel");
    const job = await client.enqueue({ kind: "cancellable", queue });
    let aborted = false;
    let started = false;
    const events: WorkerEvent[] = [];
    const { stop } = startWorker({
      client,
      queue,
      leaseMs: 600,
      onEvent: (e) => events.push(e),
      handlers: {
        cancellable: (ctx) =>
          new Promise((resolve) => {
            started = true;
            ctx.signal.addEventListener("abort", () => {
              aborted = true;
              resolve({ late: true });
            });
          }),
      },
    });
    try {
      await eventually("the handler to start", () => started, 10_000);
      await client.cancel(job.id);
      await eventually("the next heartbeat to find the lease lost", () => aborted, 10_000);
      await eventually("the worker to note the lost lease", () => events.some((e) => e.type === "lease_lost"), 5_000);
      const after = await client.getJob(job.id);
      assert.equal(after.state, "cancelled");
      assert.equal(after.result ?? null, null, "the late result was not sent");
      assert.equal(events.filter((e) => e.type === "settled").length, 0);
    } finally {
      await stop();
    }
  });
});
