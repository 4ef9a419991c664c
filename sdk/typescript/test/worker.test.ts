/** The worker against a real server: throughput with exactly-once, retries, dead jobs, leases. */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  BadRequestError,
  type ErrandClient,
  type Job,
  type JobContext,
  NonRetryableError,
  RetryLaterError,
  Worker,
  type WorkerEvent,
  type WorkerOptions,
} from "../src/index.js";
import { Server, eventually, queueName, within } from "./harness.js";

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
    const { worker, stop } = startWorker({
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
      // The handler resolved with a result after the abort: the worker must not have tried to settle it.
      assert.equal(worker.stats.settleCalls, 0, "the late result was not sent");
      assert.equal(events.filter((e) => e.type === "settled").length, 0);
    } finally {
      await stop();
    }
  });

  test("a handler that outlives the grace period: its job is given back uncounted, and on its last attempt stays available", async () => {
    const queue = queueName("giveback");
    const job = await client.enqueue({ kind: "stuck", queue, max_attempts: 1 });
    const events: WorkerEvent[] = [];
    let started = false;
    const { worker, stop } = startWorker({
      client,
      queue,
      shutdownGraceMs: 200,
      onEvent: (e) => events.push(e),
      handlers: {
        stuck: async (ctx) => {
          started = true;
          await new Promise((r) => ctx.signal.addEventListener("abort", r, { once: true }));
          return { late: true };
        },
      },
    });
    await eventually("the handler to run", () => started, 20_000);
    await stop();
    assert.equal(worker.stats.givenBack, 1);
    assert.deepEqual(events.filter((e) => e.type === "given_back").map((e) => e.jobId), [job.id]);
    const back = await client.getJob(job.id);
    assert.deepEqual([back.state, back.attempt], ["available", 0], "not dead: the attempt is not counted");
    const attempts = (await (await fetch(`${server.url}/v1/jobs/${job.id}/attempts`)).json()) as { attempts: unknown[] };
    assert.deepEqual(attempts.attempts, [], "the given-back attempt is forgotten");
    assert.equal(worker.stats.settleCalls, 0, "the handler's late result was not sent");
  });

  test("a job handed out late in a long poll keeps its lease from when it arrived, and succeeds once", async () => {
    // Lease 3 s, poll 3 s: the job arrives 2.6 s into the poll and its handler takes 600 ms,
    // so it ends after 3 s counted from when the claim was sent, but well within its lease.
    const queue = queueName("late");
    let runs = 0;
    const events: WorkerEvent[] = [];
    const { worker, stop } = startWorker({
      client,
      queue,
      leaseMs: 3_000,
      claimWaitMs: 3_000,
      onEvent: (e) => events.push(e),
      handlers: {
        late: async () => {
          runs += 1;
          await new Promise((r) => setTimeout(r, 600));
          return { ok: true };
        },
      },
    });
    try {
      await new Promise((r) => setTimeout(r, 2_600));
      assert.equal(worker.stats.claims, 0, "still in the first long poll");
      const job = await client.enqueue({ kind: "late", queue });
      const done = await client.waitForJob(job.id, { timeoutMs: 20_000 });
      assert.equal(done.state, "succeeded");
      assert.equal(done.attempt, 1, "the lease never lapsed");
      assert.equal(runs, 1);
      // The waiter may hear the job end before the worker hears its own settle answer.
      await eventually("the worker to hear its settlement", () => events.some((e) => e.type === "settled"), 10_000);
      const settled = events.filter((e) => e.type === "settled");
      assert.deepEqual(settled.map((e) => (e.type === "settled" ? e.result.error ?? null : null)), [null]);
      assert.equal(worker.stats.completed, 1);
    } finally {
      await stop();
    }
  });

  test("one bad entry does not sink its settle batch; a result that is not JSON fails its job dead", async () => {
    const queue = queueName("badentry");
    const total = 16;
    const { jobs } = await client.enqueueMany(
      Array.from({ length: total }, (_, n) => ({ kind: "batch", queue, payload: { n }, max_attempts: n === total - 1 ? 1 : 3 })),
    );
    const runs = new Map<string, number>();
    let started = 0;
    let release: () => void = () => undefined;
    const barrier = new Promise<void>((r) => (release = r));
    const { worker, stop } = startWorker({
      client,
      queue,
      concurrency: total,
      leaseMs: 2_000,
      onEvent: () => undefined,
      handlers: {
        batch: async (ctx: JobContext<{ n: number }>) => {
          runs.set(ctx.id, (runs.get(ctx.id) ?? 0) + 1);
          started += 1;
          if (started === total) release();
          await barrier;
          // Let the others finish first: the bad ones ride in a batch with them.
          if (ctx.payload.n >= total - 2) await new Promise((r) => setImmediate(r));
          // A retry past the year 9999: the server refuses the whole settle call with 400.
          if (ctx.payload.n === total - 1) throw new RetryLaterError("come back much later", 1e15);
          if (ctx.payload.n === total - 2) return { big: 10n } as never;
          return { n: ctx.payload.n };
        },
      },
    });
    try {
      const ended = await eventually(
        "every job to end",
        async () => {
          const all = await Promise.all(jobs.map((j) => client.getJob(j.id)));
          return all.every((j) => j.state === "succeeded" || j.state === "dead") ? all : undefined;
        },
        20_000,
        100,
      );
      const byN = new Map(ended.map((j) => [(j.payload as { n: number }).n, j]));
      for (let n = 0; n < total - 2; n += 1) {
        assert.equal(byN.get(n)?.state, "succeeded", `job ${n}`);
        assert.equal(byN.get(n)?.attempt, 1, `job ${n} ran once`);
      }
      const retry = byN.get(total - 1)!;
      // Sent again without the refused retry_in_ms: failed with the server's backoff (its last attempt: dead).
      assert.equal(retry.state, "dead");
      assert.match(retry.error ?? "", /come back much later/);
      const bigint = byN.get(total - 2)!;
      assert.equal(bigint.state, "dead");
      assert.equal(bigint.attempt, 1);
      assert.match(bigint.error ?? "", /not JSON/);
      assert.deepEqual([...runs.values()].filter((r) => r !== 1), [], "no job ran twice");
      // The jobs can read as ended before the worker hears the settle call's answer.
      await eventually("the worker to count the completions", () => worker.stats.completed >= total - 2, 10_000);
      assert.equal(worker.stats.completed, total - 2, "completed counts what the server took");
    } finally {
      await stop();
    }
  });

  test("a claim the server refuses for good (bad queue name) stops the worker: run() rejects", async () => {
    const worker = new Worker({ client, queue: "bad queue!", claimWaitMs: 100, onEvent: () => undefined });
    worker.register("x", () => null);
    await assert.rejects(within(5_000, "run() to reject", worker.run({ handleSignals: false })), BadRequestError);
  });

  test("progress is best effort: a refused report does not fail the attempt", async () => {
    const queue = queueName("progress");
    const job = await client.enqueue({ kind: "report", queue });
    const events: WorkerEvent[] = [];
    const { stop } = startWorker({
      client,
      queue,
      onEvent: (e) => events.push(e),
      handlers: {
        report: async (ctx) => {
          await ctx.progress(500, "out of range: the server refuses it");
          return { ok: true };
        },
      },
    });
    try {
      const done = await client.waitForJob(job.id, { timeoutMs: 20_000 });
      assert.equal(done.state, "succeeded");
      assert.equal(done.attempt, 1);
      assert.ok(events.some((e) => e.type === "heartbeat_error" && e.error instanceof BadRequestError));
    } finally {
      await stop();
    }
  });
});
