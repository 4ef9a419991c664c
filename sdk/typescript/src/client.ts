/** The client: enqueue, read, wait for, cancel and retry jobs, and the worker protocol's calls. */

import { Backoff, sleep } from "./backoff.js";
import { JobEndedError, TimeoutError, UnavailableError } from "./errors.js";
import { type EventFilter, type EventStreamOptions, type StreamItem, streamEvents } from "./events.js";
import { type CallOptions, Transport, type TransportOptions } from "./http.js";
import { ENQUEUE_FIELDS, ROUTES, type RouteName, routePath } from "./routes.js";
import {
  type BatchEnqueueResponse,
  type ClaimRequest,
  type ClaimedJob,
  type EnqueueRequest,
  FINAL_STATES,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type Job,
  type Json,
  type QueueInfo,
  type QueueSettingsPatch,
  type SettleCompletion,
  type SettleFailure,
  type SettleResult,
} from "./types.js";

/** How to reach the server; see {@link TransportOptions}. */
export type ClientOptions = TransportOptions;

/** Extra time a long poll gets beyond its wait before the call times out, in milliseconds. */
export const LONG_POLL_MARGIN_MS = 10_000;

/** The longest `?wait=` the server takes, in milliseconds. */
const MAX_WAIT_MS = 60_000;

/** Options of {@link ErrandClient.waitForJob}. */
export interface WaitOptions {
  /** Give up after this many milliseconds (default 60,000) with a {@link TimeoutError}. */
  timeoutMs?: number;
  /** Stops waiting; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Options of {@link ErrandClient.fail}. */
export interface FailOptions {
  /** Why it failed. */
  error?: string;
  /** Retry after this many milliseconds instead of the server's backoff. */
  retry_in_ms?: number;
  /** Do not retry: the job is dead now. */
  dead?: boolean;
}

/** A client of one errand server. Cheap to create; share one per process. */
export class ErrandClient {
  /** The transport every call goes through. */
  readonly transport: Transport;

  constructor(options: ClientOptions | string) {
    this.transport = new Transport(typeof options === "string" ? { baseUrl: options } : options);
  }

  /** The server's base URL. */
  get baseUrl(): string {
    return this.transport.baseUrl;
  }

  /**
   * Enqueues one job. Resolves with the stored job (or, when its `idempotency_key` was used
   * within the server's window, the earlier job).
   */
  enqueue(job: EnqueueRequest, options: CallOptions = {}): Promise<Job> {
    return this.call("enqueue", {}, enqueueBody(job), options);
  }

  /** Enqueues 1 to 10,000 jobs atomically: all are stored or none. Answers in request order. */
  enqueueMany(jobs: EnqueueRequest[], options: CallOptions = {}): Promise<BatchEnqueueResponse> {
    return this.call("enqueueBatch", {}, { jobs: jobs.map(enqueueBody) }, options);
  }

  /** Reads a job. @throws NotFoundError for an unknown id. */
  getJob(id: string, options: CallOptions = {}): Promise<Job> {
    return this.call("getJob", { id }, undefined, options);
  }

  /**
   * Waits until the job ends (`succeeded`, `dead` or `cancelled`) and resolves with it.
   * Long-polls `GET /v1/jobs/{id}?wait=` in rounds of at most 60 s until the deadline, and
   * rides out the server being away (it is a read: safe to repeat).
   *
   * @throws TimeoutError when the job has not ended by the deadline.
   */
  async waitForJob(id: string, options: WaitOptions = {}): Promise<Job> {
    const deadline = Date.now() + (options.timeoutMs ?? 60_000);
    const backoff = new Backoff({ baseMs: 100, maxMs: 2_000 });
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new TimeoutError(`job ${id} did not end in time`, "timeout");
      const wait = Math.min(left, MAX_WAIT_MS);
      try {
        const job = await this.call<Job>("getJob", { id }, undefined, {
          signal: options.signal,
          timeoutMs: wait + LONG_POLL_MARGIN_MS,
          query: { wait: String(Math.ceil(wait)) },
        });
        backoff.reset();
        if (FINAL_STATES.includes(job.state)) return job;
      } catch (error) {
        if (!(error instanceof UnavailableError || error instanceof TimeoutError)) throw error;
        const pause = error instanceof UnavailableError && error.retryAfterMs !== undefined ? error.retryAfterMs : backoff.next();
        await sleep(Math.min(pause, Math.max(0, deadline - Date.now())), options.signal);
        if (options.signal?.aborted) throw options.signal.reason;
      }
    }
  }

  /**
   * Waits for the job to end and resolves with its result.
   *
   * @throws JobEndedError when it ended `dead` or `cancelled` (the job is attached).
   * @throws TimeoutError when it has not ended by the deadline.
   */
  async waitForResult<T = Json>(id: string, options: WaitOptions = {}): Promise<T> {
    const job = await this.waitForJob(id, options);
    if (job.state !== "succeeded") throw new JobEndedError(job);
    return job.result as T;
  }

  /** Cancels a job that has not finished. @throws ConflictError when it already finished. */
  cancel(id: string, options: CallOptions = {}): Promise<Job> {
    return this.call("cancel", { id }, undefined, options);
  }

  /** Runs a dead, cancelled or retry-waiting job again now. @throws ConflictError otherwise. */
  retry(id: string, options: CallOptions = {}): Promise<Job> {
    return this.call("retry", { id }, undefined, options);
  }

  /** Reads a queue with its counts per state. @throws NotFoundError when no job ever named it. */
  getQueue(queue: string, options: CallOptions = {}): Promise<QueueInfo> {
    return this.call("getQueue", { queue }, undefined, options);
  }

  /** Changes a queue's settings (concurrency, rate, defaults, backoff); creates it when missing. */
  updateQueue(queue: string, patch: QueueSettingsPatch, options: CallOptions = {}): Promise<QueueInfo> {
    return this.call("updateQueue", { queue }, patch, options);
  }

  /**
   * Claims up to `max` ready jobs of a queue, long-polling `wait_ms` when none is ready.
   * The call's timeout is the wait plus a margin.
   */
  async claim(queue: string, request: ClaimRequest, options: CallOptions = {}): Promise<ClaimedJob[]> {
    const timeoutMs = options.timeoutMs ?? (request.wait_ms ?? 0) + LONG_POLL_MARGIN_MS;
    const answer = await this.call<{ jobs: ClaimedJob[] }>("claim", { queue }, request, { ...options, timeoutMs });
    return answer.jobs;
  }

  /** Extends a lease, and records progress and a checkpoint. @throws LeaseLostError when the lease is gone. */
  heartbeat(id: string, leaseToken: string, request: HeartbeatRequest = {}, options: CallOptions = {}): Promise<HeartbeatResponse> {
    return this.call("heartbeat", { id }, { lease_token: leaseToken, ...request }, options);
  }

  /**
   * Gives a held job back uncounted: it is `available` again at once and the attempt is
   * forgotten, for a worker that stops before the job ends (a `fail` would count the attempt
   * and, on the last one, make the job dead).
   *
   * @throws LeaseLostError when the token no longer holds the job; NotFoundError when there is no such job.
   */
  release(id: string, leaseToken: string, options: CallOptions = {}): Promise<Job> {
    return this.call("release", { id }, { lease_token: leaseToken }, options);
  }

  /** Completes a job with its result. @throws LeaseLostError when the lease is gone. */
  complete(id: string, leaseToken: string, result?: Json, extra: { session_state?: Json } = {}, options: CallOptions = {}): Promise<Job> {
    return this.call("complete", { id }, { lease_token: leaseToken, result, ...extra }, options);
  }

  /** Fails an attempt: retried after the backoff (or `retry_in_ms`), or dead. @throws LeaseLostError when the lease is gone. */
  fail(id: string, leaseToken: string, failure: FailOptions = {}, options: CallOptions = {}): Promise<Job> {
    return this.call("fail", { id }, { lease_token: leaseToken, ...failure }, options);
  }

  /**
   * Settles many jobs in one store transaction. Each entry is fenced on its own token and
   * answered on its own (completions first, then failures, in request order).
   */
  async settle(
    batch: { completions?: SettleCompletion[]; failures?: SettleFailure[] },
    options: CallOptions = {},
  ): Promise<SettleResult[]> {
    const body: { completions?: SettleCompletion[]; failures?: SettleFailure[] } = {};
    if (batch.completions?.length) body.completions = batch.completions;
    if (batch.failures?.length) body.failures = batch.failures;
    const answer = await this.call<{ results: SettleResult[] }>("settle", {}, body, options);
    return answer.results;
  }

  /**
   * Follows the server's event stream (`GET /v1/events`), reconnecting after a drop from the
   * last event id it saw. Ends when `options.signal` aborts.
   */
  events(filter: EventFilter = {}, options: EventStreamOptions = {}): AsyncGenerator<StreamItem> {
    return streamEvents(this.transport, filter, options);
  }

  /** Calls one route of {@link ROUTES}. */
  private call<T>(
    name: RouteName,
    params: Record<string, string>,
    body: unknown,
    options: CallOptions & { query?: Record<string, string> },
  ): Promise<T> {
    return this.transport.request<T>({
      method: ROUTES[name].method,
      path: routePath(name, params),
      body,
      query: options.query,
      timeoutMs: options.timeoutMs,
      signal: options.signal,
    });
  }
}

/**
 * The wire body of one job to enqueue: its fields as given (the server refuses unknown
 * ones, so a misspelt option is an error, not silently dropped), `run_at` as RFC 3339.
 */
function enqueueBody(job: EnqueueRequest): Record<string, unknown> {
  const body: Record<string, unknown> = { ...job };
  if (job.run_at instanceof Date) body.run_at = job.run_at.toISOString();
  return body;
}

/** Compile-time check: {@link ENQUEUE_FIELDS} (what the contract test checks) names every option. */
type Unlisted = Exclude<keyof EnqueueRequest, (typeof ENQUEUE_FIELDS)[number]>;
const everyEnqueueFieldListed: [Unlisted] extends [never] ? true : Unlisted = true;
void everyEnqueueFieldListed;
