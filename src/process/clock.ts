/**
 * The clock a {@linkcode Command} schedules on. The real one is
 * `performance.now()` with `setTimeout`; tests pass a manual clock so a
 * thousand periods take no time and every fire time is exact.
 *
 * @module
 */

/** A monotonic clock in milliseconds, and a way to wait on it. */
export interface Clock {
  /** Current time in ms; only differences matter, and it never goes back. */
  now(): number;
  /**
   * Resolve after about `ms` (never before, by this clock's own `now`), or
   * as soon as `signal` aborts. Never rejects.
   */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

/** `performance.now()` and `setTimeout`: the clock of every real schedule. */
export const monotonicClock: Clock = {
  now: () => performance.now(),
  sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      };
      // setTimeout counts whole ms and may wake a fraction early: round up.
      const timer = setTimeout(done, Math.max(0, Math.ceil(ms)));
      signal.addEventListener("abort", done, { once: true });
    });
  },
};
