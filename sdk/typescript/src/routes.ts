/**
 * Every HTTP route this library calls, in one place.
 *
 * The client builds its requests from this table, and the contract test reads it to check
 * that each (method, path) exists in the server's `GET /v1/openapi.json`, that every body
 * field the library may send is a property of the route's request schema, and that every
 * answer field it reads is a property of the route's response schema.
 */

/** An HTTP method the library uses. */
export type Method = "GET" | "POST" | "PATCH";

/** One route: how to call it, and the shapes the library relies on. */
export interface Route {
  /** The HTTP method. */
  readonly method: Method;
  /** The OpenAPI path template, `{name}` for a path parameter. */
  readonly path: string;
  /** Body fields the library may send (checked against the request schema). */
  readonly sends: readonly string[];
  /** Answer fields the library reads (checked against the 200 answer's schema). */
  readonly reads: readonly string[];
  /** Query parameters the library may send. */
  readonly query?: readonly string[];
}

/** The fields of one job to enqueue, as `POST /v1/jobs` and each `jobs[i]` of a batch take them. */
export const ENQUEUE_FIELDS = [
  "kind",
  "queue",
  "payload",
  "priority",
  "run_at",
  "delay",
  "max_attempts",
  "timeout",
  "tags",
  "idempotency_key",
  "reply_to",
  "correlation_id",
  "callback_url",
  "lock_key",
  "concurrency_key",
  "concurrency_limit",
  "session_key",
  "session_on_dead",
  "fairness_key",
  "fairness_weight",
  "rate_key",
  "after",
  "after_any_end",
] as const;

/** The fields of a claimed job the worker reads. */
export const CLAIMED_JOB_FIELDS = [
  "id",
  "kind",
  "queue",
  "payload",
  "attempt",
  "max_attempts",
  "timeout_ms",
  "checkpoint",
  "tags",
  "lease_token",
  "lease_expires_at",
  "session",
  "context",
  "workflow_id",
  "step",
  "batch_id",
] as const;

/** The fields of a job the client reads (waiting for an end, results). */
export const JOB_FIELDS = ["id", "kind", "queue", "state", "attempt", "result", "error", "progress"] as const;

/** The routes, by the name the client uses for them. */
export const ROUTES = {
  enqueue: { method: "POST", path: "/v1/jobs", sends: ENQUEUE_FIELDS, reads: JOB_FIELDS },
  enqueueBatch: { method: "POST", path: "/v1/jobs/batch", sends: ["jobs"], reads: ["jobs", "inserted"] },
  getJob: { method: "GET", path: "/v1/jobs/{id}", sends: [], reads: JOB_FIELDS, query: ["wait"] },
  cancel: { method: "POST", path: "/v1/jobs/{id}/cancel", sends: [], reads: JOB_FIELDS },
  retry: { method: "POST", path: "/v1/jobs/{id}/retry", sends: [], reads: JOB_FIELDS },
  claim: {
    method: "POST",
    path: "/v1/queues/{queue}/claim",
    sends: ["worker", "max", "wait_ms", "lease_ms", "kinds"],
    reads: ["jobs"],
  },
  heartbeat: {
    method: "POST",
    path: "/v1/jobs/{id}/heartbeat",
    sends: ["lease_token", "lease_ms", "progress", "checkpoint"],
    reads: ["lease_expires_at", "state"],
  },
  release: { method: "POST", path: "/v1/jobs/{id}/release", sends: ["lease_token"], reads: JOB_FIELDS },
  complete: {
    method: "POST",
    path: "/v1/jobs/{id}/complete",
    sends: ["lease_token", "result", "session_state"],
    reads: JOB_FIELDS,
  },
  fail: {
    method: "POST",
    path: "/v1/jobs/{id}/fail",
    sends: ["lease_token", "error", "retry_in_ms", "dead"],
    reads: JOB_FIELDS,
  },
  settle: { method: "POST", path: "/v1/jobs/settle", sends: ["completions", "failures"], reads: ["results"] },
  updateQueue: {
    method: "PATCH",
    path: "/v1/queues/{queue}",
    sends: ["paused", "concurrency", "rate", "max_attempts", "priority", "timeout", "backoff"],
    reads: ["name", "counts"],
  },
  getQueue: { method: "GET", path: "/v1/queues/{queue}", sends: [], reads: ["name", "paused", "counts"] },
  events: {
    method: "GET",
    path: "/v1/events",
    sends: [],
    reads: [],
    query: ["queue", "kind", "job", "tag", "type", "after"],
  },
} as const satisfies Record<string, Route>;

/** The name of a route in {@link ROUTES}. */
export type RouteName = keyof typeof ROUTES;

/**
 * The URL path of a route with its parameters filled in (each one URI-encoded).
 *
 * @throws Error when a parameter of the template is not given.
 */
export function routePath(name: RouteName, params: Record<string, string> = {}): string {
  return ROUTES[name].path.replace(/\{(\w+)\}/g, (_, key: string) => {
    const value = params[key];
    if (value === undefined) throw new Error(`route ${name}: missing path parameter ${key}`);
    return encodeURIComponent(value);
  });
}
