/** The client against a real server: enqueue, wait, cancel, retry, typed errors, events. */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  BadRequestError,
  ConflictError,
  ErrandClient,
  type ErrandEvent,
  JobEndedError,
  LeaseLostError,
  NotFoundError,
  TimeoutError,
  UnavailableError,
  Worker,
} from "../src/index.js";
import { Server, queueName, within } from "./harness.js";

describe("client", () => {
  let server: Server;
  let client: ErrandClient;

  before(async () => {
    server = await Server.start();
    client = server.client();
  });
  after(async () => {
    await server?.close();
  });

  test("enqueue with every option, then wait for the result a worker gives", async () => {
    const queue = queueName("echo");
    const parent = await client.enqueue({ kind: "echo", queue, payload: { n: 0 } });
    const job = await client.enqueue({
      kind: "echo",
      queue,
      payload: { n: 1 },
      priority: 5,
      delay: 0,
      max_attempts: 3,
      timeout: "1m",
      tags: ["a", "b"],
      idempotency_key: `key-${queue}`,
      reply_to: `${queue}-replies`,
      correlation_id: "corr-1",
      callback_url: "http://127.0.0.1:9/hook",
      concurrency_key: `ck-${queue}`,
      concurrency_limit: 2,
      fairness_key: "tenant-a",
      fairness_weight: 2,
      rate_key: `rk-${queue}`,
      after: [parent.id],
    });
    assert.equal(job.state, "blocked");
    assert.equal(job.priority, 5);
    assert.equal(job.max_attempts, 3);
    assert.equal(job.timeout_ms, 60_000);
    assert.deepEqual(job.tags, ["a", "b"]);
    assert.equal(job.correlation_id, "corr-1");
    assert.equal(job.concurrency_key, `ck-${queue}`);
    assert.equal(job.fairness_key, "tenant-a");

    const again = await client.enqueue({ kind: "echo", queue, idempotency_key: `key-${queue}` });
    assert.equal(again.id, job.id, "an idempotent repeat returns the first job");

    const worker = new Worker({
      client,
      queue,
      concurrency: 2,
      claimWaitMs: 1_000,
      handlers: { echo: (ctx) => ({ echoed: ctx.payload, attempt: ctx.attempt }) },
    });
    const running = worker.run({ handleSignals: false });
    try {
      const result = await client.waitForResult(job.id, { timeoutMs: 20_000 });
      assert.deepEqual(result, { echoed: { n: 1 }, attempt: 1 });
      const done = await client.getJob(job.id);
      assert.equal(done.state, "succeeded");
    } finally {
      await worker.stop();
      await running;
    }
  });

  test("enqueue many: one call, answers in request order, options per job", async () => {
    const queue = queueName("many");
    const runAt = new Date(Date.now() + 3_600_000);
    const answer = await client.enqueueMany([
      { kind: "a", queue, payload: { i: 0 }, lock_key: `lk-${queue}` },
      { kind: "b", queue, run_at: runAt, session_key: `s-${queue}`, session_on_dead: "continue" },
      { kind: "c", queue, idempotency_key: `many-${queue}` },
      { kind: "c", queue, idempotency_key: `many-${queue}` },
    ]);
    assert.equal(answer.jobs.length, 4);
    assert.equal(answer.inserted, 3);
    assert.deepEqual(answer.jobs.map((j) => j.inserted), [true, true, true, false]);
    assert.equal(answer.jobs[2]!.id, answer.jobs[3]!.id);
    const scheduled = await client.getJob(answer.jobs[1]!.id);
    assert.equal(scheduled.state, "scheduled");
    assert.ok(Math.abs(new Date(scheduled.run_at).getTime() - runAt.getTime()) < 1_000);
    assert.equal(scheduled.session_key, `s-${queue}`);
  });

  test("cancel, retry, and the typed errors of refusals", async () => {
    const queue = queueName("cancel");
    const job = await client.enqueue({ kind: "never", queue, delay: "1h" });
    const cancelled = await client.cancel(job.id);
    assert.equal(cancelled.state, "cancelled");
    await assert.rejects(client.cancel(job.id), ConflictError);
    const retried = await client.retry(job.id);
    assert.equal(retried.state, "available");
    await assert.rejects(client.retry(job.id), (e: unknown) => e instanceof ConflictError && e.status === 409);

    await assert.rejects(client.getJob("0193e8a0-0000-7000-8000-000000000000"), (e: unknown) => {
      return e instanceof NotFoundError && e.code === "not_found" && e.status === 404;
    });
    await assert.rejects(client.enqueue({ kind: "x", queue, priority: 5000 }), (e: unknown) => {
      return e instanceof BadRequestError && e.code === "invalid_request" && /priority/.test(e.message);
    });
    await assert.rejects(
      client.enqueue({ kind: "x", queue, dealy: "1s" } as never),
      BadRequestError,
      "an unknown (misspelt) option reaches the server and is refused",
    );

    const [claimed] = await client.claim(queue, { max: 1, lease_ms: 5_000 });
    assert.ok(claimed, "the retried job is claimable");
    await client.cancel(claimed.id);
    await assert.rejects(client.heartbeat(claimed.id, claimed.lease_token), LeaseLostError);
    await assert.rejects(client.complete(claimed.id, claimed.lease_token, { late: true }), LeaseLostError);
  });

  test("release gives a held job back uncounted; a token that no longer holds it is LeaseLostError", async () => {
    const queue = queueName("release");
    const job = await client.enqueue({ kind: "rel", queue, max_attempts: 1 });
    const [claimed] = await client.claim(queue, { max: 1, lease_ms: 60_000 });
    assert.equal(claimed?.id, job.id);
    const back = await client.release(job.id, claimed!.lease_token);
    assert.deepEqual([back.state, back.attempt], ["available", 0]);
    await assert.rejects(client.release(job.id, claimed!.lease_token), LeaseLostError);
    await assert.rejects(client.release("0193e8a0-0000-7000-8000-000000000000", claimed!.lease_token), NotFoundError);
  });

  test("a wait that reaches its deadline is a TimeoutError; a job that dies is a JobEndedError", async () => {
    const queue = queueName("wait");
    const job = await client.enqueue({ kind: "slow", queue });
    const started = Date.now();
    await assert.rejects(client.waitForJob(job.id, { timeoutMs: 400 }), TimeoutError);
    assert.ok(Date.now() - started < 5_000);

    const [claimed] = await client.claim(queue, { max: 1 });
    await client.fail(claimed!.id, claimed!.lease_token, { error: "boom", dead: true });
    await assert.rejects(client.waitForResult(job.id, { timeoutMs: 5_000 }), (e: unknown) => {
      return e instanceof JobEndedError && e.job.state === "dead" && e.job.error === "boom";
    });
  });

  test("no server: UnavailableError; a call that takes too long: TimeoutError", async () => {
    const away = new ErrandClient({ baseUrl: "http://127.0.0.1:9", timeoutMs: 2_000 });
    await assert.rejects(away.getJob("0193e8a0-0000-7000-8000-000000000000"), (e: unknown) => {
      return e instanceof UnavailableError && e.code === "connection";
    });
    const queue = queueName("slowcall");
    // A long poll with a client timeout shorter than its wait.
    await assert.rejects(client.claim(queue, { wait_ms: 3_000 }, { timeoutMs: 200 }), TimeoutError);
  });

  test("the API token is sent as a bearer token (the server accepts it; it checks none yet)", async () => {
    const withToken = new ErrandClient({ baseUrl: server.url, token: "secret-token" });
    const queue = queueName("token");
    const job = await withToken.enqueue({ kind: "t", queue });
    assert.equal((await withToken.getJob(job.id)).id, job.id);
    assert.equal(withToken.transport.headers().authorization, "Bearer secret-token");
  });

  test("events: a job's transitions arrive over the SSE stream, and it resumes after a given id", async () => {
    const queue = queueName("events");
    const controller = new AbortController();
    const seen: ErrandEvent[] = [];
    const job = await client.enqueue({ kind: "evt", queue, payload: { x: 1 } });
    const [claimed] = await client.claim(queue, { max: 1 });
    await client.complete(claimed!.id, claimed!.lease_token, { ok: 1 });
    // From the start of the log ("0-0"), filtered to this test's queue.
    const collect = (async () => {
      for await (const item of client.events({ queue }, { after: "0-0", signal: controller.signal })) {
        if (item.kind === "event") seen.push(item.event);
        if (seen.some((e) => e.type === "job.succeeded")) return;
      }
    })();
    await within(10_000, "the job's events", collect);
    controller.abort();
    assert.deepEqual(seen.map((e) => e.type), ["job.enqueued", "job.started", "job.succeeded"]);
    assert.ok(seen.every((e) => e.job?.id === job.id));
    assert.deepEqual(seen[2]!.job!.result, { ok: 1 });

    // Resume after the first event: the rest come again, nothing before it.
    const resumed = new AbortController();
    const types: string[] = [];
    for await (const item of client.events({ job: job.id }, { after: seen[0]!.id, signal: resumed.signal })) {
      if (item.kind === "event") types.push(item.event.type);
      if (types.length === 2) resumed.abort();
    }
    assert.deepEqual(types, ["job.started", "job.succeeded"]);
  });
});
