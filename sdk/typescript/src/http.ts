/**
 * The transport: one JSON request over the platform's `fetch`, with a timeout, the API
 * token, and failures turned into typed errors.
 */

import { TimeoutError, UnavailableError, errorFromResponse } from "./errors.js";
import type { Method } from "./routes.js";

/** How to reach the server. */
export interface TransportOptions {
  /** The server's base URL, e.g. `http://127.0.0.1:7878`. */
  baseUrl: string;
  /**
   * Sent as `Authorization: Bearer TOKEN`. The server does not check tokens yet (issue 16);
   * the library sends it so applications are ready when it does.
   */
  token?: string;
  /** Default timeout of a call, in milliseconds (default 30,000). Long polls add their wait to it. */
  timeoutMs?: number;
}

/** Per-call options. */
export interface CallOptions {
  /** This call's timeout in milliseconds (replaces the client's default). */
  timeoutMs?: number;
  /** Aborts the call; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** One request. */
export interface Request extends CallOptions {
  method: Method;
  path: string;
  query?: Record<string, string | string[] | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
}

/** Sends requests to one server. */
export class Transport {
  /** The base URL without a trailing slash. */
  readonly baseUrl: string;
  /** The default timeout in milliseconds. */
  readonly timeoutMs: number;
  private readonly token: string | undefined;

  constructor(options: TransportOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** The full URL of a path with its query. */
  url(path: string, query?: Record<string, string | string[] | undefined>): string {
    const url = new URL(this.baseUrl + path);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value === undefined) continue;
      for (const one of Array.isArray(value) ? value : [value]) url.searchParams.append(key, one);
    }
    return url.toString();
  }

  /** The headers every request carries. */
  headers(extra: Record<string, string> = {}): Record<string, string> {
    const headers: Record<string, string> = { accept: "application/json", ...extra };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    return headers;
  }

  /**
   * Sends a request and resolves with its parsed JSON answer.
   *
   * @throws {@link ErrandError} subclasses: the server's error as a typed error,
   *   {@link UnavailableError} when no connection could be made or it broke,
   *   {@link TimeoutError} when the timeout passed first.
   */
  async request<T>(req: Request): Promise<T> {
    const call = this.start(req);
    try {
      const response = await call.fetch();
      const text = await response.text().catch((error: unknown) => {
        throw call.failure(error);
      });
      if (!response.ok) throw errorFromResponse(response.status, text, response.headers.get("retry-after"));
      return (text === "" ? undefined : JSON.parse(text)) as T;
    } finally {
      call.done();
    }
  }

  /**
   * Sends a request and resolves with the raw response once its headers arrived (for
   * streams). The timeout covers the headers only; the caller reads the body, which
   * `req.signal` still aborts.
   */
  async send(req: Request): Promise<Response> {
    const call = this.start(req);
    try {
      return await call.fetch();
    } finally {
      call.done();
    }
  }

  /** Prepares one call: its timer, its combined signal, and how to name its failures. */
  private start(req: Request): { fetch: () => Promise<Response>; failure: (error: unknown) => unknown; done: () => void } {
    const timeoutMs = req.timeoutMs ?? this.timeoutMs;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), timeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, timeout.signal]) : timeout.signal;
    const headers = this.headers(req.headers);
    let body: string | undefined;
    if (req.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(req.body);
    }
    const failure = (error: unknown): unknown => {
      if (req.signal?.aborted) return req.signal.reason;
      if (timeout.signal.aborted) {
        return new TimeoutError(`${req.method} ${req.path}: no answer within ${timeoutMs} ms`, "timeout", undefined, {
          cause: error,
        });
      }
      return new UnavailableError(`${req.method} ${req.path}: ${describe(error)}`, "connection", undefined, undefined, {
        cause: error,
      });
    };
    const url = this.url(req.path, req.query);
    return {
      fetch: () =>
        fetch(url, { method: req.method, headers, body, signal }).catch((error: unknown) => {
          throw failure(error);
        }),
      failure,
      done: () => clearTimeout(timer),
    };
  }
}

/** A readable reason for a network failure (fetch hides it in `cause`). */
function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause as { code?: string; message?: string } | undefined;
    return cause?.code ?? cause?.message ?? error.message;
  }
  return String(error);
}
