/**
 * Example worker process: sends (pretend) welcome e-mails enqueued by examples/web.ts.
 *
 *   ERRAND_URL=http://127.0.0.1:7878 node dist-test/examples/worker.js
 *
 * Environment: ERRAND_URL (default http://127.0.0.1:7878), ERRAND_QUEUE (default `mail`),
 * ERRAND_CONCURRENCY (default 4), ERRAND_LEASE_MS (default 30000), ERRAND_GRACE_MS (default
 * 20000), ERRAND_WORK_MS (overrides each job's `work_ms`, how long "sending" takes).
 *
 * SIGTERM or Ctrl-C stops it cleanly: no new claims, running jobs finish within the grace
 * period, what still runs then is given back to the queue, and the process exits 0. A second
 * SIGTERM or Ctrl-C exits at once.
 */

import { type JobContext, NonRetryableError, Worker } from "@errand/client";

/** The payload of a `send_welcome_email` job. */
interface WelcomeEmail {
  user: number;
  email?: string;
  /** How long sending takes, in milliseconds (to show long jobs and shutdown). */
  work_ms?: number;
}

const env = process.env;
const workOverride = env.ERRAND_WORK_MS === undefined ? undefined : Number(env.ERRAND_WORK_MS);

/** Waits `ms`, or rejects as soon as the attempt must stop (lease lost, given back). */
function work(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    signal.throwIfAborted();
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

/** The handler: validates the payload, "sends" the e-mail, returns what it did. */
async function sendWelcomeEmail(ctx: JobContext<WelcomeEmail>): Promise<{ sent: boolean; user: number }> {
  const { user, email, work_ms } = ctx.payload;
  if (typeof user !== "number") throw new NonRetryableError("payload.user must be a number");
  if (email !== undefined && !email.includes("@")) throw new NonRetryableError(`not an e-mail address: ${email}`);
  await work(workOverride ?? work_ms ?? 100, ctx.signal);
  return { sent: true, user };
}

const worker = new Worker({
  client: env.ERRAND_URL ?? "http://127.0.0.1:7878",
  queue: env.ERRAND_QUEUE ?? "mail",
  concurrency: Number(env.ERRAND_CONCURRENCY ?? 4),
  leaseMs: Number(env.ERRAND_LEASE_MS ?? 30_000),
  shutdownGraceMs: Number(env.ERRAND_GRACE_MS ?? 20_000),
  reconnect: { baseMs: 100, maxMs: 2_000 },
});
worker.register("send_welcome_email", sendWelcomeEmail);

console.log(`worker ${worker.name} working queue ${env.ERRAND_QUEUE ?? "mail"}`);
await worker.run({ handleSignals: true });
console.log(`worker stopped: ${JSON.stringify(worker.stats)}`);
