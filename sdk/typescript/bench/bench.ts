/**
 * Benchmark: jobs per second through the worker at concurrency 16 with a no-op handler.
 *
 *   ERRAND_BIN=/path/to/errand node dist-test/bench/bench.js [--jobs 5000] [--concurrency 16] [--settle batch|each]
 *   node dist-test/bench/bench.js --url http://127.0.0.1:7878     # against a running server
 *
 * Starts a server of its own (unless `--url`) with a fresh data directory, enqueues the jobs
 * in batches of 1,000 first, then times the drain: from the worker's start until the queue
 * counts every job succeeded. Prints one line with jobs/s.
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
  let handled = 0;
  const worker = new Worker({
    client,
    queue,
    concurrency,
    settle,
    claimWaitMs: 1_000,
    handlers: {
      noop: () => {
        handled += 1;
      },
    },
  });
  const started = performance.now();
  const running = worker.run({ handleSignals: false });
  for (;;) {
    const info = await client.getQueue(queue);
    if (info.counts.succeeded >= total) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const seconds = (performance.now() - started) / 1000;
  const stats = worker.stats;
  await worker.stop();
  await running;
  console.log(
    `${(total / seconds).toFixed(0)} jobs/s: ${total} no-op jobs in ${seconds.toFixed(2)} s, concurrency ${concurrency}, settle ${settle}` +
      ` (handled ${handled}; ${stats.claims} claim calls, ${stats.settleCalls} settle calls)`,
  );
} finally {
  await server?.close();
}
