/** What a handler receives: the job, its fencing token, and ways to report from inside it. */

import { LeaseLostError } from "./errors.js";
import type { Lease } from "./lease.js";
import type { ClaimedJob, Json, SessionState } from "./types.js";

/** The context of one attempt of one job, handed to its handler. */
export class JobContext<P = Json> {
  /** Set by {@link JobContext.setSessionState}: the session state to complete with. */
  sessionState: Json | undefined;

  constructor(
    /** The claimed job as the server handed it out. */
    readonly job: ClaimedJob,
    private readonly lease: Lease,
  ) {}

  /** The job's id. */
  get id(): string {
    return this.job.id;
  }

  /** The job's kind. */
  get kind(): string {
    return this.job.kind;
  }

  /** The job's queue. */
  get queue(): string {
    return this.job.queue;
  }

  /** The job's input. */
  get payload(): P {
    return this.job.payload as P;
  }

  /** This attempt's number, 1 for the first. */
  get attempt(): number {
    return this.job.attempt;
  }

  /** Attempts allowed before the job is dead. */
  get maxAttempts(): number {
    return this.job.max_attempts;
  }

  /** What an earlier attempt saved with {@link JobContext.saveCheckpoint}: resume from here. */
  get checkpoint(): Json | undefined {
    return this.job.checkpoint ?? undefined;
  }

  /**
   * The lease token: the fencing token of this attempt. Pass it to other systems that must
   * refuse writes from an attempt that lost its lease (a newer attempt holds a newer token).
   */
  get leaseToken(): string {
    return this.job.lease_token;
  }

  /** For a job with a `session_key`: the session's state and version read with the claim. */
  get session(): SessionState | null | undefined {
    return this.job.session;
  }

  /**
   * Aborts when this attempt must stop: its lease was lost (cancelled, expired, timed out)
   * or the worker is giving it back at shutdown. Pass it to fetch and other cancellable calls.
   */
  get signal(): AbortSignal {
    return this.lease.signal;
  }

  /** Throws the lease's end if the attempt must stop (for loops between steps). */
  throwIfAborted(): void {
    this.lease.signal.throwIfAborted();
  }

  /**
   * Reports progress now (one heartbeat that also extends the lease). Every call writes a
   * `job.progress` event: call it when the progress changes. Best effort: a failed report
   * (server away, a refused value) goes to the worker's observer as a `heartbeat_error` and
   * the promise still resolves, so a blip does not fail the attempt.
   *
   * @throws LeaseLostError when the lease is gone (only then).
   */
  async progress(percent: number | null, message?: string): Promise<void> {
    try {
      await this.lease.beat({ progress: { percent, message: message ?? null } });
    } catch (error) {
      if (error instanceof LeaseLostError) throw error;
      this.lease.report(error);
    }
  }

  /**
   * Saves a checkpoint durably now (one heartbeat): a later attempt of this job starts with it
   * as {@link JobContext.checkpoint}. Unlike {@link JobContext.progress} it is not best
   * effort: when the promise resolves the checkpoint is stored.
   *
   * @throws LeaseLostError when the lease is gone; the call's error (`UnavailableError`,
   *   `TimeoutError`, `BadRequestError`, ...) when the checkpoint was not stored: catch it and
   *   carry on if the step can be redone, or let it fail the attempt.
   */
  saveCheckpoint(checkpoint: Json): Promise<void> {
    return this.lease.beat({ checkpoint });
  }

  /** Completes the job with this session state as the session's next version (session jobs only). */
  setSessionState(state: Json): void {
    this.sessionState = state;
  }
}
