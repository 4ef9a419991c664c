/** A claimed job's lease: automatic heartbeats while its handler runs, and the lost-lease signal. */

import type { ErrandClient } from "./client.js";
import { LeaseLostError } from "./errors.js";
import type { ClaimedJob, HeartbeatRequest } from "./types.js";

/** Why a lease's signal aborted. */
export type LeaseEnd = "lease_lost" | "shutdown";

/** Options of a {@link Lease}. */
export interface LeaseOptions {
  /** The lease length asked for at each heartbeat, in milliseconds. */
  leaseMs: number;
  /** Time between heartbeats, in milliseconds. */
  intervalMs: number;
  /** Called when a heartbeat fails for a reason other than a lost lease (it is retried). */
  onError?: (error: unknown) => void;
}

/** Keeps one job's lease alive until {@link Lease.stop}, and says when it is gone. */
export class Lease {
  /** When the lease runs out unless renewed, as far as this process knows (epoch ms). */
  expiresAt: number;
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private endReason: LeaseEnd | undefined;

  constructor(
    private readonly client: ErrandClient,
    private readonly job: ClaimedJob,
    private readonly options: LeaseOptions,
    receivedAt: number,
  ) {
    // From when the claim's answer arrived: the server starts the lease when it hands the job
    // out, which in a long poll may be long after the claim was sent.
    this.expiresAt = receivedAt + options.leaseMs;
  }

  /** Aborts when the lease is lost (or given back at shutdown): the handler should stop. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Why the lease ended early, if it did. */
  get ended(): LeaseEnd | undefined {
    return this.endReason;
  }

  /** Starts the automatic heartbeats. */
  start(): void {
    this.schedule(this.options.intervalMs);
  }

  /** Stops the heartbeats (the job was settled, or is being given back). */
  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
  }

  /** Ends the lease early: stops heartbeats and aborts the handler's signal. */
  end(reason: LeaseEnd): void {
    if (this.endReason !== undefined) return;
    this.endReason = reason;
    this.stop();
    this.controller.abort(new LeaseLostError(`job ${this.job.id}: ${reason}`, reason));
  }

  /**
   * Sends one heartbeat now, with progress or a checkpoint if given.
   *
   * Each call is bounded by the heartbeat interval (at least 1 s).
   *
   * @throws LeaseLostError when the lease is gone (the signal aborts too), or the call's error.
   */
  async beat(extra: HeartbeatRequest = {}): Promise<void> {
    if (this.endReason !== undefined) throw this.controller.signal.reason;
    const sentAt = Date.now();
    try {
      // Bounded by the interval (at least 1 s): a hung heartbeat must not outlive the lease,
      // so the next one goes out in time.
      await this.client.heartbeat(
        this.job.id,
        this.job.lease_token,
        { lease_ms: this.options.leaseMs, ...extra },
        { timeoutMs: Math.max(1_000, this.options.intervalMs) },
      );
      this.expiresAt = sentAt + this.options.leaseMs;
    } catch (error) {
      if (error instanceof LeaseLostError) this.end("lease_lost");
      throw error;
    }
  }

  /** Tells the observer about a failure that did not end the lease (a best-effort call's). */
  report(error: unknown): void {
    this.options.onError?.(error);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.beat().then(
        () => this.schedule(this.options.intervalMs),
        (error: unknown) => {
          if (error instanceof LeaseLostError) return;
          this.options.onError?.(error);
          // Try again soon: the lease may still hold if the server comes back in time.
          this.schedule(Math.min(this.options.intervalMs, 500));
        },
      );
    }, ms);
  }
}
