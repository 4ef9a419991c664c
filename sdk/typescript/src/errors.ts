/**
 * Typed errors: one class per thing that can happen to a call, all subclasses of
 * {@link ErrandError}, so callers can `catch (e) { if (e instanceof LeaseLostError) ... }`.
 */

import type { Job } from "./types.js";

/** Any failure of a call to errand. */
export class ErrandError extends Error {
  /** The HTTP status, when the server answered. */
  readonly status: number | undefined;
  /** The server's error code (`not_found`, `lease_lost`, ...), or a library code for failures without an answer. */
  readonly code: string;

  constructor(message: string, code: string, status?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
  }
}

/** The server answered with an error this library has no narrower class for. */
export class ApiError extends ErrandError {}

/** `400`: the request broke a rule (`invalid_request`, `invalid_json`); the message names the field. */
export class BadRequestError extends ApiError {}

/** `404`: no such job or queue. */
export class NotFoundError extends ApiError {}

/** `403` (`cross_origin`): the server refuses requests from this origin. */
export class ForbiddenError extends ApiError {}

/**
 * `413`: the body is over the server's `max_request_bytes` (`payload_too_large`), or a
 * result is over `max_result_bytes` (`result_too_large`: the job is dead now).
 */
export class PayloadTooLargeError extends ApiError {}

/** `409` (`conflict`, `contended`, `already_exists`, ...): the state does not allow it. */
export class ConflictError extends ApiError {}

/** `409 lease_lost`: the lease token no longer holds the job. Stop working on it and settle nothing. */
export class LeaseLostError extends ConflictError {}

/**
 * The server is away or cannot take the request now: `503` (`unavailable`, `busy`), `502`
 * or `504` (from a proxy in front of it), or no connection at all (or it broke). Safe requests may be retried after `retryAfterMs` (when the server said).
 */
export class UnavailableError extends ErrandError {
  /** The server's `Retry-After`, in milliseconds, when it gave one. */
  readonly retryAfterMs: number | undefined;

  constructor(message: string, code: string, status?: number, retryAfterMs?: number, options?: { cause?: unknown }) {
    super(message, code, status, options);
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * The call did not finish within its timeout (or a wait reached its deadline), or the server
 * answered `408 request_timeout` (the body arrived too slowly).
 */
export class TimeoutError extends ErrandError {}

/** A job that was waited for ended without succeeding (`dead` or `cancelled`). */
export class JobEndedError extends ErrandError {
  /** The job as it ended, with its `error`. */
  readonly job: Job;

  constructor(job: Job) {
    super(`job ${job.id} ended ${job.state}${job.error ? `: ${job.error}` : ""}`, `job_${job.state}`);
    this.job = job;
  }
}

/**
 * Thrown by a handler: the job must not be retried; the worker fails it with `dead: true`.
 */
export class NonRetryableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NonRetryableError";
  }
}

/**
 * Thrown by a handler: fail this attempt and retry after `retryInMs` instead of the
 * server's backoff (`0`: at once).
 */
export class RetryLaterError extends Error {
  /** When to retry, in milliseconds from now. */
  readonly retryInMs: number;

  constructor(message: string, retryInMs: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "RetryLaterError";
    this.retryInMs = retryInMs;
  }
}

/** The body of an error answer: `{"error": {"code", "message"}}`. */
interface ErrorBody {
  error?: { code?: unknown; message?: unknown };
}

/** Parses `Retry-After` (seconds) into milliseconds. */
function retryAfter(header: string | null): number | undefined {
  if (header === null) return undefined;
  const seconds = Number(header);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}

/**
 * The typed error for an error answer.
 *
 * @param status the HTTP status
 * @param bodyText the answer's body (parsed when it is the documented JSON shape)
 * @param retryAfterHeader the `Retry-After` header, if any
 */
export function errorFromResponse(status: number, bodyText: string, retryAfterHeader: string | null): ErrandError {
  let code = `http_${status}`;
  let message = bodyText.slice(0, 500) || `HTTP ${status}`;
  try {
    const body = JSON.parse(bodyText) as ErrorBody;
    if (typeof body.error?.code === "string") code = body.error.code;
    if (typeof body.error?.message === "string") message = body.error.message;
  } catch {
    // Not JSON (a proxy's page, say): keep the text.
  }
  const text = `${status} ${code}: ${message}`;
  if (status === 409 && code === "lease_lost") return new LeaseLostError(text, code, status);
  if (status === 409) return new ConflictError(text, code, status);
  if (status === 404) return new NotFoundError(text, code, status);
  if (status === 400) return new BadRequestError(text, code, status);
  if (status === 403) return new ForbiddenError(text, code, status);
  if (status === 413) return new PayloadTooLargeError(text, code, status);
  if (status === 503 || status === 502 || status === 504) {
    return new UnavailableError(text, code, status, retryAfter(retryAfterHeader));
  }
  if (status === 408) return new TimeoutError(text, code, status);
  return new ApiError(text, code, status);
}

/**
 * Whether a failure says nothing about the request itself, so the same request may be
 * sent again later: the server was away, busy or slow.
 */
export function isTransient(error: unknown): boolean {
  return error instanceof UnavailableError || error instanceof TimeoutError || (error instanceof ApiError && error.status === 500);
}
