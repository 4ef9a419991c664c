/**
 * Benchmark: jobs per second through the worker at concurrency 16 with a no-op handler.
 *
 *   ERRAND_BIN=/path/to/errand node dist-test/bench/bench.js [--jobs 5000] [--concurrency 16] [--settle batch|each]
 *   node dist-test/bench/bench.js --url http://127.0.0.1:7878     # against a running server
 *   node dist-test/bench/bench.js --raw    # no Worker: one loop of claim 16 + settle 16 over plain calls
 *
 * Starts a server of its own (unless `--url`) with a fresh data directory, enqueues the jobs
 * in batches of 1,000 first, then times the drain: from the worker's start until the server
 * has acknowledged every job's completion. Prints one line with jobs/s.
 */

import { parseArgs } from "node:util";

import { ErrandClient, Worker } from "@errand/client";

import { Server } from "../test/harness.js";

const { values } = parseArgs({
  options: {
    jobs: { type: "string", default: "5000" },
    concurrency: { type: "string", default: "16" },
    settle: { type: "string", default: "batch" },
    url: { type: "string" },
    raw: { type: "boolean", default: false },
  },
});
const total = Number(values.jobs);
const concurrency = Number(values.concurrency);
const settle = values.settle === "each" ? "each" : "batch";

const server = values.url === undefined ? await Server.start() : undefined;
try {
  const client = new ErrandClient({ baseUrl: values.url ?? server!.url, timeoutMs: 60_000 });
  const queue = `bench-${Date.now()}`;
  for (let done = 0; done < total; done += 1_000) {
    const n = Math.min(1_000, total - done);
    await client.enqueueMany(Array.from({ length: n }, (_, i) => ({ kind: "noop", queue, payload: { i: done + i } })));
  }
  if (values.raw) {
    // The raw HTTP figure: one loop claiming `concurrency` jobs and settling them in one call.
    const started = performance.now();
    let done = 0;
    let calls = 0;
    while (done < total) {
      const jobs = await client.claim(queue, { worker: "bench-raw", max: concurrency, wait_ms: 1_000, lease_ms: 30_000 });
      if (jobs.length === 0) continue;
      await client.settle({ completions: jobs.map((j) => ({ id: j.id, lease_token: j.lease_token, result: null })) });
      done += jobs.length;
      calls += 2;
    }
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `${(total / seconds).toFixed(0)} jobs/s: ${total} jobs in ${seconds.toFixed(2)} s, raw claim ${concurrency} + settle loop (${calls} calls)`,
    );
  } else {
    await workerRun(client, queue);
  }
} finally {
  await server?.close();
}

/** Drains the queue through a {@link Worker} and prints jobs/s. */
async function workerRun(client: ErrandClient, queue: string): Promise<void> {
  let handled = 0;
  let succeeded = 0;
  let allDone: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (allDone = resolve));
  const worker = new Worker({
    client,
    queue,
    concurrency,
    settle,
    claimWaitMs: 1_000,
    onEvent: (event) => {
      if ("error" in event) console.error(event);
      if (event.type === "settled" && event.result.state === "succeeded" && ++succeeded === total) allDone();
    },
    handlers: {
      noop: () => {
        handled += 1;
      },
    },
  });
  const started = performance.now();
  const running = worker.run({ handleSignals: false });
  // Done when the server has acknowledged every job's completion.
  await finished;
  const seconds = (performance.now() - started) / 1000;
  const stats = worker.stats;
  await worker.stop();
  await running;
  console.log(
    `${(total / seconds).toFixed(0)} jobs/s: ${total} no-op jobs in ${seconds.toFixed(2)} s, concurrency ${concurrency}, settle ${settle}` +
      ` (handled ${handled}; ${stats.claims} claim calls, ${stats.settleCalls} settle calls)`,
  );
}
