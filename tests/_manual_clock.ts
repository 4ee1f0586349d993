/**
 * A clock that moves only when a test says so, for scheduling tests: every
 * sleeper wakes at exactly its time, in time order, and everything it sets
 * off settles before the clock moves on.
 *
 * @module
 */

import type { Clock } from "../src/schedule/command.ts";

interface Sleeper {
  due: number;
  wake: () => void;
}

/** Let every queued promise reaction run (they all go before a timer). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** A {@linkcode Clock} driven by {@linkcode ManualClock.advance}. */
export class ManualClock implements Clock {
  #now: number;
  #sleepers: Sleeper[] = [];

  /** @param start the initial time */
  constructor(start = 1000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const sleeper: Sleeper = {
        due: this.#now + Math.max(0, ms),
        wake: () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        this.#sleepers = this.#sleepers.filter((s) => s !== sleeper);
        resolve();
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#sleepers.push(sleeper);
    });
  }

  /** How many sleeps are waiting. */
  get sleeping(): number {
    return this.#sleepers.length;
  }

  /** Move time forward by `ms`, waking sleepers on the way. */
  async advance(ms: number): Promise<void> {
    await this.advanceTo(this.#now + ms);
  }

  /** Move time to `t`, waking every sleeper due by then, in time order. */
  async advanceTo(t: number): Promise<void> {
    await settle();
    for (;;) {
      let next: Sleeper | undefined;
      for (const s of this.#sleepers) {
        if (s.due <= t && (!next || s.due < next.due)) next = s;
      }
      if (!next) break;
      this.#sleepers = this.#sleepers.filter((s) => s !== next);
      this.#now = Math.max(this.#now, next.due);
      next.wake();
      await settle();
    }
    this.#now = Math.max(this.#now, t);
    await settle();
  }
}
