/**
 * The shapes of the errand API as this library sends and receives them.
 *
 * Field names are the wire names (snake_case), exactly as `docs/API.md` and
 * `GET /v1/openapi.json` spell them, so an option reads the same here as in the API docs.
 * Options that belong to the library alone (timeouts, abort signals) are camelCase.
 */

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A duration: milliseconds, or text such as `"30s"`, `"5m"`, `"1h 30m"`. */
export type Duration = number | string;

/** Where a job is in its life. */
export type JobState = "scheduled" | "available" | "running" | "succeeded" | "dead" | "cancelled" | "blocked";

/** The states a job does not leave by itself. */
export const FINAL_STATES: readonly JobState[] = ["succeeded", "dead", "cancelled"];

/** What a running job reports about itself. */
export interface Progress {
  /** 0 to 100. */
  percent?: number | null;
  /** What it is doing now. */
  message?: string | null;
}

/** One job to enqueue: every option of `POST /v1/jobs`. */
export interface EnqueueRequest {
  /** Which handler runs it (required). */
  kind: string;
  /** The queue; `default` when left out. */
  queue?: string;
  /** The handler's input; `{}` when left out. */
  payload?: Json;
  /** -1000 to 1000, higher runs first. */
  priority?: number;
  /** Run no earlier than this instant (RFC 3339, or a Date). Not with `delay`. */
  run_at?: string | Date;
  /** Run no earlier than this long from now. Not with `run_at`. */
  delay?: Duration;
  /** Attempts before the job is dead, 1 to 10000. */
  max_attempts?: number;
  /** Longest one attempt may run. */
  timeout?: Duration;
  /** Up to 32 labels to search by. */
  tags?: string[];
  /** Deduplicates enqueues within the server's window (24 h): a repeat returns the first job. */
  idempotency_key?: string;
  /** A queue that gets one `errand.reply` message when the job ends. */
  reply_to?: string;
  /** Copied into the reply, the callback and every event of the job. */
  correlation_id?: string;
  /** An http(s) URL POSTed, signed, when the job ends. */
  callback_url?: string;
  /** Never two jobs of this key running at once, anywhere. */
  lock_key?: string;
  /** At most `concurrency_limit` jobs of this key run at once. */
  concurrency_key?: string;
  /** The limit of `concurrency_key`, 1 to 1,000,000 (default 1). */
  concurrency_limit?: number;
  /** Jobs of one session key run one at a time in enqueue order and share state. */
  session_key?: string;
  /** What the session does if this job dies: `block` (default) or `continue`. */
  session_on_dead?: "block" | "continue";
  /** The tenant: a queue's jobs are claimed round-robin across fairness keys. */
  fairness_key?: string;
  /** Turns this key gets per turn of a weight-1 key, 1 to 1000. */
  fairness_weight?: number;
  /** The rate limit (`PUT /v1/limits/key/{name}`) this job's start counts against. */
  rate_key?: string;
  /** Job ids that must succeed (or, with `after_any_end`, end) first. */
  after?: string[];
  /** Any end of the `after` jobs releases this one, not only success. */
  after_any_end?: boolean;
}

/** A job as the server shows it (`GET /v1/jobs/{id}`); fields the library does not name are kept. */
export interface Job {
  id: string;
  kind: string;
  queue: string;
  state: JobState;
  payload: Json;
  priority: number;
  run_at: string;
  attempt: number;
  max_attempts: number;
  timeout_ms?: number | null;
  tags: string[];
  idempotency_key?: string | null;
  result?: Json;
  error?: string | null;
  progress?: Progress | null;
  checkpoint?: Json;
  worker?: string | null;
  lease_expires_at?: string | null;
  created_at: string;
  updated_at: string;
  started_at?: string | null;
  finished_at?: string | null;
  reply_to?: string | null;
  correlation_id?: string | null;
  callback_url?: string | null;
  parked?: boolean;
  [field: string]: unknown;
}

/** One entry of a batch enqueue's answer, in request order. */
export interface EnqueuedJob {
  id: string;
  state: JobState;
  /** False when an idempotency key returned an earlier job. */
  inserted: boolean;
}

/** The answer to `POST /v1/jobs/batch`. */
export interface BatchEnqueueResponse {
  jobs: EnqueuedJob[];
  /** How many were new. */
  inserted: number;
}

/** A session's state, handed to a claimed job with a `session_key`. */
export interface SessionState {
  key: string;
  state: Json;
  version: number;
}

/** A claimed job as the worker protocol hands it out. */
export interface ClaimedJob {
  id: string;
  kind: string;
  queue: string;
  payload: Json;
  attempt: number;
  max_attempts: number;
  timeout_ms?: number | null;
  checkpoint?: Json;
  tags?: string[];
  /** The fencing token: send it with heartbeat, complete and fail. */
  lease_token: string;
  lease_expires_at?: string | null;
  session?: SessionState | null;
  context?: Json;
  workflow_id?: string | null;
  step?: string | null;
  batch_id?: string | null;
  [field: string]: unknown;
}

/** `POST /v1/queues/{queue}/claim`. */
export interface ClaimRequest {
  worker?: string;
  max?: number;
  wait_ms?: number;
  lease_ms?: number;
  kinds?: string[];
}

/** `POST /v1/jobs/{id}/heartbeat` without the token. */
export interface HeartbeatRequest {
  lease_ms?: number;
  progress?: Progress;
  checkpoint?: Json;
}

/** The answer to a heartbeat. */
export interface HeartbeatResponse {
  lease_expires_at?: string | null;
  state: JobState;
}

/** One completion in `POST /v1/jobs/settle`. */
export interface SettleCompletion {
  id: string;
  lease_token: string;
  result?: Json;
  session_state?: Json;
}

/** One failure in `POST /v1/jobs/settle`. */
export interface SettleFailure {
  id: string;
  lease_token: string;
  error?: string;
  /** Retry after this many milliseconds instead of the server's backoff. */
  retry_in_ms?: number;
  /** Do not retry: the job is dead now. */
  dead?: boolean;
}

/** How one settlement went: `state` when it took effect, `error` when it did not. */
export interface SettleResult {
  id: string;
  state?: JobState | null;
  error?: { code: string; message: string } | null;
}

/** A queue's retry backoff. */
export interface Backoff {
  base: Duration;
  max: Duration;
}

/** `PATCH /v1/queues/{queue}`: a field left out stays, `null` removes it. */
export interface QueueSettingsPatch {
  paused?: boolean | null;
  concurrency?: number | null;
  rate?: { limit: number; period: Duration; burst?: number } | null;
  max_attempts?: number | null;
  priority?: number | null;
  timeout?: Duration | null;
  backoff?: Backoff | null;
}

/** A queue with its counts per state. */
export interface QueueInfo {
  name: string;
  paused: boolean;
  counts: Record<JobState, number>;
  [field: string]: unknown;
}
