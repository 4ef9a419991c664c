/**
 * Following `GET /v1/events`: server-sent events parsed from fetch's body stream, with
 * reconnection (capped, jittered backoff) that resumes after the last event id seen.
 */

import { Backoff, type BackoffOptions, sleep } from "./backoff.js";
import { ErrandError, errorFromResponse, isTransient } from "./errors.js";
import type { Transport } from "./http.js";
import { ROUTES, routePath } from "./routes.js";
import { parseSse } from "./sse.js";
import type { JobState, Json, Progress } from "./types.js";

/** The types of events. */
export type EventType =
  | "job.enqueued"
  | "job.started"
  | "job.progress"
  | "job.succeeded"
  | "job.failed"
  | "job.dead"
  | "job.cancelled"
  | "schedule.fired"
  | "batch.completed";

/** Which events to receive; each filter takes one value or several, all filters must pass. */
export interface EventFilter {
  queue?: string | string[];
  kind?: string | string[];
  job?: string | string[];
  tag?: string | string[];
  type?: EventType | EventType[];
}

/** A job as an event shows it. */
export interface JobSnapshot {
  id: string;
  queue: string;
  kind: string;
  state: JobState;
  attempt: number;
  max_attempts: number;
  tags?: string[];
  correlation_id?: string | null;
  schedule?: string | null;
  progress?: Progress | null;
  result?: Json;
  result_bytes?: number | null;
  error?: string | null;
}

/** An event of the log. */
export interface ErrandEvent {
  /** Its id: resume after it. */
  id: string;
  type: EventType;
  /** When it happened (the store's clock). */
  at: string;
  job?: JobSnapshot | null;
  schedule?: { schedule: string; slot: string; job_id?: string } | null;
  batch?: Record<string, unknown> | null;
}

/** What the stream yields: events, and the two notices that are not events. */
export type StreamItem =
  | { kind: "event"; event: ErrandEvent }
  /** Events up to `missedThrough` were pruned before the stream could send them. */
  | { kind: "gap"; missedThrough: string }
  /** The server ended the stream (the consumer fell behind, or it is stopping); the library reconnects. */
  | { kind: "cutoff"; resumeAfter: string | undefined; reason: string };

/** Options of {@link streamEvents}. */
export interface EventStreamOptions {
  /** Start after this event id; without it the stream starts now, with no history. */
  after?: string;
  /** Ends the stream. */
  signal?: AbortSignal;
  /** Backoff between reconnects (default 100 ms doubling to 10 s, jittered). */
  reconnect?: BackoffOptions;
  /**
   * Reconnect when nothing (no event, no keep-alive comment) arrives for this long, in
   * milliseconds (default 45,000: three of the server's 15 s keep-alive comments).
   */
  idleTimeoutMs?: number;
  /** Called when the connection breaks and the stream reconnects. */
  onReconnect?: (error: unknown) => void;
}

/** The server sends a keep-alive comment every 15 s; three missed ones mean the connection is dead. */
const DEFAULT_IDLE_TIMEOUT_MS = 45_000;

/**
 * Yields the server's events as they happen, reconnecting after a drop from the last id
 * seen (`Last-Event-ID`), so nothing the server still keeps is missed; a connection silent
 * for `idleTimeoutMs` counts as dropped. Ends when
 * `options.signal` aborts; throws only errors that a reconnect cannot cure (a bad filter).
 */
export async function* streamEvents(
  transport: Transport,
  filter: EventFilter,
  options: EventStreamOptions = {},
): AsyncGenerator<StreamItem> {
  const backoff = new Backoff(options.reconnect);
  let cursor = options.after;
  const query: Record<string, string | undefined> = {};
  for (const key of ROUTES.events.query) {
    if (key === "after") continue;
    const value = filter[key as keyof EventFilter];
    if (value !== undefined) query[key] = Array.isArray(value) ? value.join(",") : value;
  }
  while (!options.signal?.aborted) {
    try {
      const headers: Record<string, string> = { accept: "text/event-stream" };
      if (cursor !== undefined) headers["last-event-id"] = cursor;
      const response = await transport.send({
        method: ROUTES.events.method,
        path: routePath("events"),
        query,
        headers,
        signal: options.signal,
      });
      if (!response.ok) throw errorFromResponse(response.status, await response.text(), response.headers.get("retry-after"));
      if (response.body === null) throw new ErrandError("event stream without a body", "no_body");
      for await (const message of parseSse(response.body, options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS)) {
        backoff.reset();
        if (message.id !== undefined) cursor = message.id;
        const item = toItem(message.event, message.data);
        if (item !== undefined) yield item;
      }
      options.onReconnect?.(new ErrandError("event stream ended", "stream_ended"));
    } catch (error) {
      if (options.signal?.aborted) return;
      if (error instanceof ErrandError && !isTransient(error) && error.code !== "stream_ended") throw error;
      options.onReconnect?.(error);
    }
    await sleep(backoff.next(), options.signal);
  }
}

/** One SSE message as a stream item; unknown items are skipped. */
function toItem(event: string, data: string): StreamItem | undefined {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(data) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (event === "gap") return { kind: "gap", missedThrough: String(parsed.missed_through) };
  if (event === "cutoff") {
    const resume = parsed.resume_after;
    return { kind: "cutoff", resumeAfter: typeof resume === "string" ? resume : undefined, reason: String(parsed.reason) };
  }
  return { kind: "event", event: parsed as unknown as ErrandEvent };
}
