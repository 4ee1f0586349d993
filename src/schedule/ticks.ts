/**
 * The drift-free schedule grid, on an injectable clock: tick k is due at
 * `start + initialDelay + k·interval` (plus its jitter), and the wait before
 * it is whatever remains until then, so the time the caller spends on a
 * tick never pushes later ticks back. A tick that outlasts its period
 * either gives up the grid points it missed (`overrun: "skip"`, counted in
 * the next tick's `skipped`) or has the next tick fire at once
 * (`"immediate"`); never a burst of catch-up ticks. {@linkcode Command}
 * runs on it, and so does `fiwi poll`, which fires every node on each tick.
 *
 * @example
 * ```ts
 * import { scheduleTicks } from "../../mod.ts";
 * for await (const tick of scheduleTicks({ interval: 50, count: 3 })) {
 *   console.log(`tick ${tick.index}, ${tick.skipped} skipped before it`);
 * }
 * ```
 *
 * @module
 */

import { ConfigurationError } from "../errors.ts";
import { type Clock, monotonicClock } from "../process/clock.ts";

/** Options of {@linkcode scheduleTicks}. Times are milliseconds on `clock`. */
export interface ScheduleTicksOptions {
  /** Period between ticks; > 0 (0 is allowed only with `count: 1`). */
  interval: number;
  /** Ticks before the schedule ends: a whole number >= 1 (default: forever). */
  count?: number;
  /** Wait before the first tick (default 0). */
  initialDelay?: number;
  /** Each tick is delayed by a random amount in [0, jitter) (default 0). */
  jitter?: number;
  /** Source of jitter in [0, 1) (default `Math.random`). */
  random?: () => number;
  /**
   * A tick whose work ends after the next one was due: "skip" (default)
   * waits for the next grid point; "immediate" fires the next tick at once.
   */
  overrun?: "skip" | "immediate";
  /** The clock (default `performance.now()`); tests pass a manual one. */
  clock?: Clock;
  /** The grid's origin on `clock` (default: `clock.now()` when iteration begins). */
  start?: number;
  /** Aborting it ends the schedule, also in the middle of a wait. */
  signal?: AbortSignal;
}

/** One tick of {@linkcode scheduleTicks}. */
export interface Tick {
  /** Its grid point: `start + initialDelay + index·interval`. */
  index: number;
  /** When it was due on the clock (grid point plus jitter). */
  due: number;
  /** Ticks yielded so far, this one included. */
  count: number;
  /** Grid points given up since the previous tick because it overran. */
  skipped: number;
}

function checkOptions(o: ScheduleTicksOptions): void {
  const { interval, count } = o;
  if (count !== undefined && !(Number.isInteger(count) && count >= 1)) {
    throw new ConfigurationError(
      `Invalid count ${JSON.stringify(count)}: give a whole number >= 1`,
    );
  }
  if (
    typeof interval !== "number" || !Number.isFinite(interval) ||
    interval < 0 || (interval === 0 && count !== 1)
  ) {
    throw new ConfigurationError(
      `Invalid interval ${
        JSON.stringify(interval)
      }: give milliseconds above 0 (or 0 with count 1)`,
    );
  }
  for (const key of ["initialDelay", "jitter"] as const) {
    const v = o[key];
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) {
      throw new ConfigurationError(
        `Invalid ${key} ${JSON.stringify(v)}: give milliseconds >= 0`,
      );
    }
  }
}

/**
 * The ticks of a drift-free schedule (see the module documentation). Each
 * tick is yielded once it is due; the next one is worked out when the
 * caller asks for it, from the clock at that moment, so whatever the caller
 * did in between decides whether grid points were missed. Ends after
 * `count` ticks, or as soon as `signal` aborts (the wait is cut short).
 *
 * @param options interval, count, overrun policy, clock and signal
 * @returns the ticks, each when it is due
 * @throws {ConfigurationError} for a bad option, when iteration begins
 *
 * @example A manual clock: no real waiting
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { type Clock, scheduleTicks } from "../../mod.ts";
 * let now = 0;
 * const clock: Clock = {
 *   now: () => now,
 *   sleep: (ms) => Promise.resolve(void (now += ms)),
 * };
 * const seen: number[][] = [];
 * for await (const tick of scheduleTicks({ interval: 100, count: 3, clock })) {
 *   seen.push([tick.index, tick.due, tick.skipped]);
 *   if (tick.index === 0) now += 250; // this tick's work overran two points
 * }
 * assertEquals(seen, [[0, 0, 0], [3, 300, 2], [4, 400, 0]]);
 * ```
 */
export async function* scheduleTicks(
  options: ScheduleTicksOptions,
): AsyncGenerator<Tick, void, undefined> {
  checkOptions(options);
  const {
    interval,
    count,
    jitter = 0,
    random = Math.random,
    overrun = "skip",
    clock = monotonicClock,
    signal = new AbortController().signal,
  } = options;
  const base = (options.start ?? clock.now()) + (options.initialDelay ?? 0);
  const jittered = (k: number) =>
    base + k * interval + (jitter ? random() * jitter : 0);
  let k = 0;
  let due = jittered(0);
  let skipped = 0;
  for (let n = 1;; n++) {
    for (let now = clock.now(); now < due; now = clock.now()) {
      if (signal.aborted) return;
      await clock.sleep(due - now, signal);
    }
    if (signal.aborted) return;
    yield { index: k, due, count: n, skipped };
    if (signal.aborted || n === count) return;
    const now = clock.now();
    const last = k;
    if (now <= base + (k + 1) * interval) {
      k++;
      due = jittered(k);
    } else if (overrun === "skip") {
      k = Math.ceil((now - base) / interval);
      due = jittered(k);
    } else {
      // The latest missed grid point fires now; the ones before it are
      // dropped, so a long tick never leaves a backlog behind it.
      k = Math.floor((now - base) / interval);
      due = base + k * interval;
    }
    skipped = k - last - 1;
  }
}
