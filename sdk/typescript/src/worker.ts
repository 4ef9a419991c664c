/**
 * The worker: claims jobs of one queue in batches with long polls, runs a handler per kind
 * with bounded concurrency, heartbeats while handlers run, settles in batches, and shuts
 * down cleanly.
 */

import { hostname } from "node:os";

import { Backoff, type BackoffOptions, sleep } from "./backoff.js";
import { type ClientOptions, ErrandClient } from "./client.js";
import { JobContext } from "./context.js";
import { ApiError, LeaseLostError, NonRetryableError, NotFoundError, RetryLaterError, UnavailableError, isTransient } from "./errors.js";
import { Lease } from "./lease.js";
import { type SettleMode, Settler } from "./settler.js";
import type { ClaimedJob, Job, Json, SettleResult } from "./types.js";

/** A handler: runs one attempt of a job; its return value is the job's result. */
export type Handler<P = Json> = (ctx: JobContext<P>) => Promise<Json | void> | Json | void;

/** What the worker tells its observer about. */
export type WorkerEvent =
  | { type: "claim_error"; error: unknown; retryInMs: number /** -1: not retried, the worker stops */ }
  | { type: "heartbeat_error"; jobId: string; error: unknown }
  | { type: "settle_error"; error: unknown }
  | { type: "settled"; jobId: string; outcome: "completed" | "failed"; result: SettleResult }
  | { type: "lease_lost"; jobId: string }
  | { type: "given_back"; jobId: string; job: Job }
  | { type: "give_back_error"; jobId: string; error: unknown /** not given back: it runs again when its lease lapses */ }
  | { type: "handler_error"; jobId: string; error: unknown };

/** Options of a {@link Worker}. */
export interface WorkerOptions {
  /** The client, or how to make one. */
  client: ErrandClient | ClientOptions | string;
  /** The queue to work. */
  queue: string;
  /** Handlers by kind (more with {@link Worker.register}). */
  handlers?: Record<string, Handler<never>>;
  /** Jobs run at once (default 10). */
  concurrency?: number;
  /** Lease length asked for at claim and heartbeat, in milliseconds (default 30,000). */
  leaseMs?: number;
  /** Heartbeat every this fraction of the lease (default 1/3). */
  heartbeatFraction?: number;
  /** How long one claim long-polls for work, in milliseconds (default 30,000; at most 60,000). */
  claimWaitMs?: number;
  /** The worker's name on jobs and attempts (default `HOST-PID`). */
  name?: string;
  /**
   * How long a shutdown waits for running handlers before giving their jobs back (default
   * 20,000 ms: well within Kubernetes' default 30 s termination grace period, so the give-back
   * happens before the SIGKILL).
   */
  shutdownGraceMs?: number;
  /** `batch` (default): settle through `POST /v1/jobs/settle`; `each`: one complete/fail per job. */
  settle?: SettleMode;
  /** Backoff between claims while the server is away (default 100 ms doubling to 10 s, jittered). */
  reconnect?: BackoffOptions;
  /** Observer of what went wrong and what was settled (default: errors to `console.error`). */
  onEvent?: (event: WorkerEvent) => void;
}

/** Options of {@link Worker.run}. */
export interface RunOptions {
  /**
   * Stop cleanly on SIGTERM and SIGINT (default true). A second SIGTERM or SIGINT during the
   * shutdown exits the process at once (status 143 or 130), without giving jobs back.
   */
  handleSignals?: boolean;
}

/** The most jobs one claim may ask for (the server's limit). */
const MAX_CLAIM = 1_000;

/** How long a stop lets an in-flight claim run before aborting it, in milliseconds. */
const CLAIM_ABORT_DELAY_MS = 250;

/** One job being worked. */
interface Running {
  job: ClaimedJob;
  lease: Lease;
  done: Promise<void>;
}

/** Logs errors; quiet about routine events. */
function defaultObserver(event: WorkerEvent): void {
  if ("error" in event) console.error(`errand worker: ${event.type}:`, event.error);
}

/**
 * A worker of one queue. Register handlers, then `await worker.run()`; `worker.stop()` (or
 * SIGTERM) stops claiming, lets running handlers finish within the grace period, and gives
 * back what still runs (`POST /v1/jobs/{id}/release`: uncounted, the job is available again
 * at once and the attempt forgotten, so a job on its last attempt runs again rather than
 * going dead), then `run()` resolves.
 */
export class Worker {
  /** The client the worker calls through. */
  readonly client: ErrandClient;
  /** The worker's name. */
  readonly name: string;
  private readonly handlers = new Map<string, Handler<never>>();
  private readonly running = new Map<string, Running>();
  private readonly settler: Settler;
  private readonly concurrency: number;
  private readonly leaseMs: number;
  private readonly intervalMs: number;
  private readonly claimWaitMs: number;
  private readonly graceMs: number;
  private readonly observe: (event: WorkerEvent) => void;
  private readonly stopController = new AbortController();
  private slotFreed: (() => void) | undefined;
  private finished: Promise<void> | undefined;
  private counters = { claims: 0, claimed: 0, completed: 0, failed: 0, givenBack: 0 };
  private fatal: unknown;

  constructor(private readonly options: WorkerOptions) {
    this.client = options.client instanceof ErrandClient ? options.client : new ErrandClient(options.client);
    this.name = options.name ?? `${hostname()}-${process.pid}`;
    this.concurrency = Math.max(1, options.concurrency ?? 10);
    this.leaseMs = options.leaseMs ?? 30_000;
    this.intervalMs = Math.max(50, this.leaseMs * (options.heartbeatFraction ?? 1 / 3));
    this.claimWaitMs = Math.min(60_000, options.claimWaitMs ?? 30_000);
    this.graceMs = options.shutdownGraceMs ?? 20_000;
    const observer = options.onEvent ?? defaultObserver;
    this.observe = (event) => {
      try {
        observer(event);
      } catch (error) {
        // An observer's own failure must not stop the worker.
        console.error("errand worker: onEvent threw:", error);
      }
    };
    this.settler = new Settler(this.client, {
      mode: options.settle ?? "batch",
      onError: (error) => this.observe({ type: "settle_error", error }),
    });
    for (const [kind, handler] of Object.entries(options.handlers ?? {})) this.register(kind, handler);
  }

  /** Registers the handler of a kind (replacing any before). Only registered kinds are claimed. */
  register<P = Json>(kind: string, handler: Handler<P>): this {
    this.handlers.set(kind, handler as Handler<never>);
    return this;
  }

  /** Jobs whose handlers run now. */
  get active(): number {
    return this.running.size;
  }

  /**
   * Claim calls made, jobs claimed, jobs the server took as completed and as failed (a
   * settlement the server refused counts in neither), jobs given back at shutdown (released
   * uncounted), and settle calls so far.
   */
  get stats(): { claims: number; claimed: number; completed: number; failed: number; givenBack: number; settleCalls: number } {
    return { ...this.counters, settleCalls: this.settler.calls };
  }

  /** Whether a stop was asked for. */
  get stopping(): boolean {
    return this.stopController.signal.aborted;
  }

  /**
   * Works the queue until {@link Worker.stop} (or SIGTERM/SIGINT), then shuts down and
   * resolves. Claims that fail for a transient reason (server away, busy, slow, 500) are
   * retried with backoff; a claim the server refuses for good (400 bad queue name, 403, 404,
   * 415, ...) shuts the worker down as a stop does and then rejects with that error.
   */
  run(options: RunOptions = {}): Promise<void> {
    if (this.finished !== undefined) return this.finished;
    if (this.handlers.size === 0) return Promise.reject(new Error("errand worker: register at least one handler before run()"));
    const onSignal = (signal: NodeJS.Signals): void => {
      if (this.stopping) {
        // A second signal: the operator wants out now.
        console.error(`errand worker: second ${signal}: exiting without waiting for running jobs`);
        process.exit(signal === "SIGINT" ? 130 : 143);
      }
      void this.stop();
    };
    if (options.handleSignals ?? true) {
      process.on("SIGTERM", onSignal);
      process.on("SIGINT", onSignal);
    }
    this.finished = this.loop().finally(() => {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
    });
    return this.finished;
  }

  /** Asks the worker to stop; resolves when {@link Worker.run} has finished. */
  async stop(): Promise<void> {
    this.stopController.abort();
    this.slotFreed?.();
    await this.finished?.catch(() => undefined);
  }

  private async loop(): Promise<void> {
    const backoff = new Backoff(this.options.reconnect);
    const stop = this.stopController.signal;
    const kinds = [...this.handlers.keys()];
    while (!stop.aborted) {
      const free = this.concurrency - this.running.size;
      if (free <= 0) {
        await new Promise<void>((resolve) => (this.slotFreed = resolve));
        this.slotFreed = undefined;
        continue;
      }
      let jobs: ClaimedJob[];
      // A stop aborts a claim only after CLAIM_ABORT_DELAY_MS: a claim that finds work answers
      // well within it (and its jobs run, within the grace period), so the abort cuts only a
      // long poll that is waiting for work, which the server undoes. Aborting a claim whose
      // answer is already on its way would strand its jobs until their leases expire.
      const claimAbort = new AbortController();
      const abortLater = (): void => void setTimeout(() => claimAbort.abort(), CLAIM_ABORT_DELAY_MS);
      stop.addEventListener("abort", abortLater, { once: true });
      try {
        jobs = await this.client.claim(
          this.options.queue,
          { worker: this.name, max: Math.min(free, MAX_CLAIM), wait_ms: this.claimWaitMs, lease_ms: this.leaseMs, kinds },
          { signal: claimAbort.signal },
        );
        this.counters.claims += 1;
        backoff.reset();
      } catch (error) {
        if (stop.aborted) break;
        if (error instanceof ApiError && !isTransient(error)) {
          // The server refuses this claim for good: retrying cannot help.
          this.observe({ type: "claim_error", error, retryInMs: -1 });
          this.fatal = error;
          this.stopController.abort();
          break;
        }
        const retryInMs =
          error instanceof UnavailableError && error.retryAfterMs !== undefined ? error.retryAfterMs : backoff.next();
        this.observe({ type: "claim_error", error, retryInMs });
        await sleep(retryInMs, stop);
        continue;
      } finally {
        stop.removeEventListener("abort", abortLater);
      }
      // Leases count from the answer's arrival: a long poll may hand a job out late.
      const receivedAt = Date.now();
      this.counters.claimed += jobs.length;
      for (const job of jobs) this.start(job, receivedAt);
    }
    await this.shutdown();
    if (this.fatal !== undefined) throw this.fatal;
  }

  /** Runs one job's handler with its lease, then settles it. */
  private start(job: ClaimedJob, receivedAt: number): void {
    const lease = new Lease(this.client, job, {
      leaseMs: this.leaseMs,
      intervalMs: this.intervalMs,
      onError: (error) => this.observe({ type: "heartbeat_error", jobId: job.id, error }),
    }, receivedAt);
    const entry: Running = { job, lease, done: Promise.resolve() };
    this.running.set(job.id, entry);
    lease.start();
    entry.done = this.work(job, lease).finally(() => {
      this.running.delete(job.id);
      this.slotFreed?.();
    });
  }

  private async work(job: ClaimedJob, lease: Lease): Promise<void> {
    const handler = this.handlers.get(job.kind);
    const ctx = new JobContext(job, lease);
    let outcome: { ok: true; result: Json | void } | { ok: false; error: unknown };
    try {
      if (handler === undefined) throw new NonRetryableError(`no handler for kind ${job.kind}`);
      outcome = { ok: true, result: await handler(ctx as JobContext<never>) };
    } catch (error) {
      outcome = { ok: false, error };
    }
    if (lease.ended !== undefined) {
      // Lost or given back: another attempt may hold the job now; settle nothing.
      lease.stop();
      if (lease.ended === "lease_lost") this.observe({ type: "lease_lost", jobId: job.id });
      return;
    }
    // Settling continues in the background; the slot frees now. Heartbeats go on until the
    // server has the settlement, so the lease holds while a settle call is retried.
    void this.settle(job, lease, ctx, outcome);
  }

  private async settle(
    job: ClaimedJob,
    lease: Lease,
    ctx: JobContext,
    outcome: { ok: true; result: Json | void } | { ok: false; error: unknown },
  ): Promise<void> {
    const base = { id: job.id, lease_token: job.lease_token };
    let result: SettleResult;
    if (outcome.ok) {
      result = await this.settler.complete(
        { ...base, result: outcome.result ?? null, ...(ctx.sessionState !== undefined ? { session_state: ctx.sessionState } : {}) },
        () => lease.expiresAt,
      );
    } else {
      const error = outcome.error;
      this.observe({ type: "handler_error", jobId: job.id, error });
      const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      const failure =
        error instanceof NonRetryableError
          ? { ...base, error: message, dead: true }
          : error instanceof RetryLaterError
            ? { ...base, error: message, retry_in_ms: Math.max(0, Math.round(error.retryInMs)) }
            : { ...base, error: message };
      result = await this.settler.fail(failure, () => lease.expiresAt);
    }
    this.count(result);
    lease.stop();
    this.observe({ type: "settled", jobId: job.id, outcome: outcome.ok ? "completed" : "failed", result });
  }

  /** Counts a settlement the server took, by the state it left the job in. */
  private count(result: SettleResult): void {
    if (result.state === "succeeded") this.counters.completed += 1;
    else if (typeof result.state === "string") this.counters.failed += 1;
  }

  /** Waits for running handlers up to the grace period, gives back the rest, flushes settlements. */
  private async shutdown(): Promise<void> {
    const deadline = Date.now() + this.graceMs;
    if (this.running.size > 0) {
      const timer = new AbortController();
      const all = Promise.all([...this.running.values()].map((r) => r.done));
      await Promise.race([all, sleep(deadline - Date.now(), timer.signal)]);
      timer.abort();
    }
    // All at once: one slow answer must not hold up the others.
    await Promise.all([...this.running.values()].map(({ job, lease }) => this.giveBack(job, lease)));
    await this.settler.drain();
  }

  /**
   * Gives a job whose handler outlived the grace period back, uncounted (`release`). A
   * transient failure (server away) is tried again with backoff while the lease holds; after
   * that the job runs again when its lease lapses. A lost lease means the job is no longer
   * this worker's: nothing to give back.
   */
  private async giveBack(job: ClaimedJob, lease: Lease): Promise<void> {
    lease.end("shutdown");
    const backoff = new Backoff(this.options.reconnect);
    for (;;) {
      try {
        const released = await this.client.release(job.id, job.lease_token);
        this.counters.givenBack += 1;
        this.observe({ type: "given_back", jobId: job.id, job: released });
        return;
      } catch (error) {
        if (error instanceof LeaseLostError || error instanceof NotFoundError) {
          this.observe({ type: "lease_lost", jobId: job.id });
          return;
        }
        const left = lease.expiresAt - Date.now();
        if (!isTransient(error) || left <= 0) {
          this.observe({ type: "give_back_error", jobId: job.id, error });
          return;
        }
        const pause = error instanceof UnavailableError && error.retryAfterMs !== undefined ? error.retryAfterMs : backoff.next();
        await sleep(Math.min(pause, left));
      }
    }
  }
}
