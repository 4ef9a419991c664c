/** Waiting: abortable sleeps and capped exponential backoff with jitter. */

/** How to back off between tries. */
export interface BackoffOptions {
  /** The first wait, in milliseconds (default 100). */
  baseMs?: number;
  /** The longest wait, in milliseconds (default 10,000). */
  maxMs?: number;
}

/**
 * Capped exponential backoff with "equal jitter": try `n` (0-based) waits between half and
 * all of `min(max, base * 2^n)`, so many workers reconnecting at once spread out and none
 * waits longer than the cap.
 */
export class Backoff {
  private readonly baseMs: number;
  private readonly maxMs: number;
  private tries = 0;

  constructor(options: BackoffOptions = {}) {
    this.baseMs = options.baseMs ?? 100;
    this.maxMs = options.maxMs ?? 10_000;
  }

  /** The next wait, in milliseconds; each call doubles the ceiling up to the cap. */
  next(): number {
    const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.tries, 30));
    this.tries += 1;
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  /** Starts over after a success. */
  reset(): void {
    this.tries = 0;
  }
}

/**
 * Resolves after `ms` milliseconds, or at once (without throwing) when `signal` aborts.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener("abort", done, { once: true });
  });
}
