/**
 * Settling finished jobs. In `batch` mode settlements go out through `POST /v1/jobs/settle`
 * as group commits: a settlement is sent at once when no settle call is in flight, and
 * otherwise rides on the next call, which leaves as soon as the one in flight answers. So
 * batching never holds a settlement back longer than one call's round trip, and under load
 * one call carries many. In `each` mode every settlement is its own `complete` or `fail`.
 *
 * A call that fails for a transient reason (server away, busy) is sent again with backoff
 * (settlements are idempotent for their token) until the lease it settles has run out.
 */

import { Backoff, type BackoffOptions, sleep } from "./backoff.js";
import type { ErrandClient } from "./client.js";
import { ErrandError, LeaseLostError, isTransient } from "./errors.js";
import type { SettleCompletion, SettleFailure, SettleResult } from "./types.js";

/** How settlements are sent. */
export type SettleMode = "batch" | "each";

/** One settlement waiting to be sent. */
interface Pending {
  entry: SettleCompletion | SettleFailure;
  failure: boolean;
  /** Stop trying after this instant (epoch ms): the lease is gone by then anyway. Read at each try. */
  deadline: () => number;
  resolve: (result: SettleResult) => void;
}

/** Options of a {@link Settler}. */
export interface SettlerOptions {
  mode?: SettleMode;
  /** Most entries in one settle call (default 1,000; the server takes 10,000). */
  maxBatch?: number;
  /** Settle calls in flight at once in batch mode (default 1). */
  maxInFlight?: number;
  /** Backoff between tries of a failed call. */
  retry?: BackoffOptions;
  /** Told about failed calls (they are retried) and entries given up. */
  onError?: (error: unknown) => void;
}

/** Collects settlements and sends them. Each settlement's promise never rejects. */
export class Settler {
  /** Calls sent so far (settle, complete or fail), retries included. */
  calls = 0;
  private queue: Pending[] = [];
  private inFlight = 0;
  private readonly idle = new Set<() => void>();
  private readonly mode: SettleMode;
  private readonly maxBatch: number;
  private readonly maxInFlight: number;

  constructor(
    private readonly client: ErrandClient,
    private readonly options: SettlerOptions = {},
  ) {
    this.mode = options.mode ?? "batch";
    this.maxBatch = options.maxBatch ?? 1000;
    this.maxInFlight = options.maxInFlight ?? 1;
  }

  /** Completes a job; resolves with how it went (`error.code` `lease_lost` when the lease was gone). */
  complete(entry: SettleCompletion, deadline: () => number): Promise<SettleResult> {
    return this.add(entry, false, deadline);
  }

  /** Fails a job's attempt; resolves with how it went. */
  fail(entry: SettleFailure, deadline: () => number): Promise<SettleResult> {
    return this.add(entry, true, deadline);
  }

  /** Resolves once nothing is queued or in flight. */
  drain(): Promise<void> {
    if (this.queue.length === 0 && this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.add(resolve));
  }

  private add(entry: SettleCompletion | SettleFailure, failure: boolean, deadline: () => number): Promise<SettleResult> {
    return new Promise((resolve) => {
      this.queue.push({ entry, failure, deadline, resolve });
      this.pump();
    });
  }

  private pump(): void {
    if (this.mode === "each") {
      for (const one of this.queue.splice(0)) void this.send([one]);
      return;
    }
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      void this.send(this.queue.splice(0, this.maxBatch));
    }
  }

  private async send(batch: Pending[]): Promise<void> {
    this.inFlight += 1;
    const backoff = new Backoff(this.options.retry ?? { baseMs: 50, maxMs: 2_000 });
    let left = batch;
    try {
      while (left.length > 0) {
        const now = Date.now();
        for (const gone of left.filter((p) => p.deadline() <= now)) {
          gone.resolve({ id: gone.entry.id, error: { code: "lease_expired", message: "the lease ran out before the server took the settlement" } });
        }
        left = left.filter((p) => p.deadline() > now);
        if (left.length === 0) break;
        try {
          const results = await this.call(left);
          left.forEach((p, i) => p.resolve(results[i] ?? { id: p.entry.id, error: { code: "missing", message: "no answer for this entry" } }));
          left = [];
        } catch (error) {
          if (!isTransient(error)) {
            // The whole call was refused (a bug, or a 4xx for the batch): nothing was kept.
            this.options.onError?.(error);
            const code = error instanceof ErrandError ? error.code : "error";
            for (const p of left) p.resolve({ id: p.entry.id, error: { code, message: String(error) } });
            left = [];
            break;
          }
          this.options.onError?.(error);
          await sleep(Math.min(backoff.next(), Math.max(...left.map((p) => p.deadline())) - Date.now()));
        }
      }
    } finally {
      this.inFlight -= 1;
      this.pump();
      if (this.queue.length === 0 && this.inFlight === 0) {
        for (const resolve of this.idle) resolve();
        this.idle.clear();
      }
    }
  }

  /** One call: a settle of the batch, or one complete/fail. Results in the batch's order. */
  private async call(batch: Pending[]): Promise<SettleResult[]> {
    this.calls += 1;
    if (this.mode === "each" && batch.length === 1) {
      const [one] = batch as [Pending];
      const { id, lease_token, ...rest } = one.entry;
      try {
        const job = one.failure
          ? await this.client.fail(id, lease_token, rest as Omit<SettleFailure, "id" | "lease_token">)
          : await this.client.complete(id, lease_token, (rest as SettleCompletion).result, {
              session_state: (rest as SettleCompletion).session_state,
            });
        return [{ id, state: job.state }];
      } catch (error) {
        if (error instanceof LeaseLostError || (error instanceof ErrandError && !isTransient(error) && error.status !== undefined)) {
          return [{ id, error: { code: error.code, message: error.message } }];
        }
        throw error;
      }
    }
    const completions = batch.filter((p) => !p.failure).map((p) => p.entry as SettleCompletion);
    const failures = batch.filter((p) => p.failure).map((p) => p.entry as SettleFailure);
    const results = await this.client.settle({ completions, failures });
    // The answer lists completions first, then failures, each in request order.
    const byPosition = new Map<Pending, SettleResult>();
    const ordered = [...batch.filter((p) => !p.failure), ...batch.filter((p) => p.failure)];
    ordered.forEach((p, i) => {
      const result = results[i];
      if (result !== undefined) byPosition.set(p, result);
    });
    return batch.map((p) => byPosition.get(p) ?? { id: p.entry.id, error: { code: "missing", message: "no answer for this entry" } });
  }
}
