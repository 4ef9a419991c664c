/**
 * Settling finished jobs. In `batch` mode settlements go out through `POST /v1/jobs/settle`
 * as group commits: a settlement is sent at once when no settle call is in flight, and
 * otherwise rides on the next call, which leaves as soon as the one in flight answers. So
 * batching never holds a settlement back longer than one call's round trip, and under load
 * one call carries many. In `each` mode every settlement is its own `complete` or `fail`.
 *
 * A call that fails for a transient reason (server away, busy) is sent again with backoff
 * (settlements are idempotent for their token) until the lease it settles has run out; a
 * settlement is never dropped on the client's guess that its lease ran out: it is sent, and
 * the server answers `lease_lost` if so.
 */

import { Backoff, type BackoffOptions, sleep } from "./backoff.js";
import type { ErrandClient } from "./client.js";
import { ConflictError, ErrandError, NotFoundError, isTransient } from "./errors.js";
import type { SettleCompletion, SettleFailure, SettleResult } from "./types.js";

/** How settlements are sent. */
export type SettleMode = "batch" | "each";

/** One settlement waiting to be sent. */
interface Pending {
  entry: SettleCompletion | SettleFailure;
  failure: boolean;
  /** The entry's JSON length (what it adds to a settle body). */
  bytes: number;
  /** Stop retrying a transient failure after this instant (epoch ms): the lease is gone by then. Read at each try. */
  deadline: () => number;
  resolve: (result: SettleResult) => void;
  /** Set on the entry sent instead of one the server refused: never replaced again. */
  fallback?: boolean;
}

/** Options of a {@link Settler}. */
export interface SettlerOptions {
  mode?: SettleMode;
  /** Most entries in one settle call (default 1,000; the server takes 10,000). */
  maxBatch?: number;
  /** Most bytes of entries in one settle call (default 1 MiB); a larger entry goes alone. */
  maxBatchBytes?: number;
  /** Settle calls in flight at once in batch mode (default 1). */
  maxInFlight?: number;
  /** Backoff between tries of a failed call. */
  retry?: BackoffOptions;
  /** Told about failed calls (they are retried) and entries given up. */
  onError?: (error: unknown) => void;
}

/** The longest error text sent in a fallback failure. */
const MAX_ERROR_CHARS = 2_000;

/**
 * Collects settlements and sends them. Each settlement's promise never rejects.
 *
 * A call the server refuses as a whole (400, 413, ...) is split in halves and each half sent
 * on its own, so one bad entry cannot hold the others back. An entry refused on its own is
 * replaced once: a completion by a failure naming the server's answer (`dead` when the
 * result was too large), a failure by a plain failure with the server's backoff. Every
 * entry is sent at least once; only a transient failure is retried, until its deadline.
 */
export class Settler {
  /** Calls sent so far (settle, complete or fail), retries included. */
  calls = 0;
  private queue: Pending[] = [];
  private inFlight = 0;
  private readonly idle = new Set<() => void>();
  private readonly mode: SettleMode;
  private readonly maxBatch: number;
  private readonly maxBatchBytes: number;
  private readonly maxInFlight: number;

  constructor(
    private readonly client: ErrandClient,
    private readonly options: SettlerOptions = {},
  ) {
    this.mode = options.mode ?? "batch";
    this.maxBatch = options.maxBatch ?? 1000;
    this.maxBatchBytes = options.maxBatchBytes ?? 1024 * 1024;
    this.maxInFlight = options.maxInFlight ?? 1;
  }

  /**
   * Completes a job; resolves with how it went (`error.code` `lease_lost` when the lease was
   * gone). A result that is not JSON (a BigInt, a cycle) fails the job as dead instead.
   */
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
      let bytes: number;
      try {
        bytes = JSON.stringify(entry).length;
      } catch (error) {
        // Not JSON: the server could never take it, and the same handler would make it again.
        this.options.onError?.(error);
        const message = `the result is not JSON: ${error instanceof Error ? error.message : String(error)}`;
        entry = { id: entry.id, lease_token: entry.lease_token, error: message.slice(0, MAX_ERROR_CHARS), dead: true };
        failure = true;
        bytes = JSON.stringify(entry).length;
      }
      this.queue.push({ entry, failure, bytes, deadline, resolve });
      this.pump();
    });
  }

  private pump(): void {
    if (this.mode === "each") {
      for (const one of this.queue.splice(0)) void this.send([one]);
      return;
    }
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      let take = 0;
      let bytes = 0;
      while (take < this.queue.length && take < this.maxBatch) {
        const next = this.queue[take]!.bytes;
        if (take > 0 && bytes + next > this.maxBatchBytes) break;
        bytes += next;
        take += 1;
      }
      void this.send(this.queue.splice(0, take));
    }
  }

  private async send(batch: Pending[]): Promise<void> {
    this.inFlight += 1;
    try {
      await this.deliver(batch);
    } finally {
      this.inFlight -= 1;
      this.pump();
      if (this.queue.length === 0 && this.inFlight === 0) {
        for (const resolve of this.idle) resolve();
        this.idle.clear();
      }
    }
  }

  /** Sends a batch until the server has answered for each of its entries. */
  private async deliver(batch: Pending[]): Promise<void> {
    const backoff = new Backoff(this.options.retry ?? { baseMs: 50, maxMs: 2_000 });
    for (;;) {
      let error: unknown;
      try {
        const results = await this.call(batch);
        batch.forEach((p, i) => p.resolve(results[i] ?? { id: p.entry.id, error: { code: "missing", message: "no answer for this entry" } }));
        return;
      } catch (caught) {
        error = caught;
      }
      this.options.onError?.(error);
      if (isTransient(error) || !(error instanceof ErrandError)) {
        const wait = Math.min(backoff.next(), Math.max(...batch.map((p) => p.deadline())) - Date.now());
        if (wait > 0) {
          await sleep(wait);
          continue;
        }
        // The leases are gone by now: the server would answer lease_lost.
        for (const p of batch) p.resolve({ id: p.entry.id, error: { code: "lease_expired", message: `gave up after: ${String(error)}` } });
        return;
      }
      // Refused as a whole: find the entry at fault by halving.
      if (batch.length > 1) {
        const half = Math.ceil(batch.length / 2);
        await this.deliver(batch.slice(0, half));
        await this.deliver(batch.slice(half));
        return;
      }
      const [one] = batch as [Pending];
      const instead = one.fallback ? undefined : this.fallback(one, error);
      if (instead === undefined) {
        one.resolve({ id: one.entry.id, error: { code: error.code, message: error.message } });
        return;
      }
      await this.deliver([instead]);
      return;
    }
  }

  /** What to send instead of an entry the server refused on its own (resolving the same promise). */
  private fallback(one: Pending, error: ErrandError): Pending {
    const said = `${error.message}`;
    const entry: SettleFailure = one.failure
      ? { id: one.entry.id, lease_token: one.entry.lease_token, error: `${(one.entry as SettleFailure).error}`.slice(0, MAX_ERROR_CHARS), ...((one.entry as SettleFailure).dead ? { dead: true } : {}) }
      : {
          id: one.entry.id,
          lease_token: one.entry.lease_token,
          error: `the server refused the result: ${said}`.slice(0, MAX_ERROR_CHARS),
          ...(error.status === 413 ? { dead: true } : {}),
        };
    return { entry, failure: true, bytes: JSON.stringify(entry).length, deadline: one.deadline, resolve: one.resolve, fallback: true };
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
        // Answers about this job (its lease is gone, it is dead already): that entry's result.
        // Other refusals throw, so the entry is replaced as in a settle.
        if (error instanceof ConflictError || error instanceof NotFoundError || (error instanceof ErrandError && error.code === "result_too_large")) {
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
