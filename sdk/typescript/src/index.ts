/**
 * `@errand/client`: the client and worker library of the errand background-jobs server.
 *
 * ```ts
 * import { ErrandClient, Worker } from "@errand/client";
 * const client = new ErrandClient("http://127.0.0.1:7878");
 * const job = await client.enqueue({ kind: "send_email", payload: { to: "a@b.c" } });
 * const worker = new Worker({ client, queue: "default", handlers: { send_email: async (ctx) => ({ sent: true }) } });
 * await worker.run();
 * ```
 */

export { Backoff, type BackoffOptions, sleep } from "./backoff.js";
export { type ClientOptions, ErrandClient, type FailOptions, LONG_POLL_MARGIN_MS, type WaitOptions } from "./client.js";
export { JobContext } from "./context.js";
export {
  ApiError,
  BadRequestError,
  ConflictError,
  ErrandError,
  ForbiddenError,
  JobEndedError,
  LeaseLostError,
  NonRetryableError,
  NotFoundError,
  PayloadTooLargeError,
  RetryLaterError,
  TimeoutError,
  UnavailableError,
  isTransient,
} from "./errors.js";
export {
  type ErrandEvent,
  type EventFilter,
  type EventStreamOptions,
  type EventType,
  type JobSnapshot,
  type StreamItem,
  streamEvents,
} from "./events.js";
export { type CallOptions, Transport, type TransportOptions } from "./http.js";
export { ENQUEUE_FIELDS, ROUTES, type Route, type RouteName, routePath } from "./routes.js";
export { type SettleMode, Settler } from "./settler.js";
export { type SseMessage, SseParser, parseSse } from "./sse.js";
export * from "./types.js";
export { type Handler, type RunOptions, Worker, type WorkerEvent, type WorkerOptions } from "./worker.js";
