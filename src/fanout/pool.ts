/**
 * The bounded worker pool under every many-node call: `runAll`, `pushAll`,
 * `pullAll`, `discover`, and the `fiwi` command's own loops. At most
 * `concurrency` jobs are in flight, results come back in item order, and
 * every job gets a signal that aborts with the caller's signal or, when a
 * result says so (`stopWhen`), for all the others: the two shapes of
 * structured concurrency, collect-everything and fail-fast.
 *
 * std's `pooledMap` is close, but it wraps a job's rejection in an
 * `AggregateError`, has no signal to abort the jobs still running, and
 * yields through a stream; fiwi needs the first rejection as it was and the
 * siblings stopped, so the pool is these few lines.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { mapPool } from "../../mod.ts";
 * const squares = await mapPool([1, 2, 3, 4], async (n) => n * n, {
 *   concurrency: 2,
 * });
 * assertEquals(squares, [1, 4, 9, 16]);
 * ```
 *
 * @module
 */

import { ConfigurationError } from "../errors.ts";

/**
 * How many jobs a pool keeps in flight when not told: 64, the fan-out of
 * `clush` (pdsh uses 32). For a run, each job is one local client process.
 *
 * @example
 * ```ts
 * import { DEFAULT_CONCURRENCY } from "../../mod.ts";
 * console.log(DEFAULT_CONCURRENCY); // 64 nodes at once
 * ```
 */
export const DEFAULT_CONCURRENCY = 64;

/** Options of {@linkcode mapPool}. */
export interface PoolOptions<R> {
  /**
   * Most jobs in flight at once (default {@linkcode DEFAULT_CONCURRENCY}); a
   * whole number >= 1: there is no unbounded mode.
   */
  concurrency?: number;
  /**
   * Aborting it aborts every job's signal. Jobs not begun are still called,
   * with the aborted signal, so each item gets a result (a run that never
   * spawned, say) rather than a hole.
   */
  signal?: AbortSignal;
  /**
   * A result for which this returns true aborts every other job's signal
   * (fail fast). Default: never; every job runs to its own end.
   */
  stopWhen?: (result: R) => boolean;
}

/**
 * Throw {@linkcode ConfigurationError} unless `concurrency` is a whole
 * number >= 1.
 */
export function validateConcurrency(concurrency: unknown): void {
  if (!Number.isInteger(concurrency) || (concurrency as number) < 1) {
    throw new ConfigurationError(
      `Invalid concurrency ${
        JSON.stringify(concurrency)
      }: give a whole number >= 1`,
    );
  }
}

/**
 * Call `job` on every item, at most `concurrency` at a time, and resolve
 * with the results in item order.
 *
 * Each job gets a signal that aborts with `options.signal`, or once a
 * result satisfies `options.stopWhen`. A job that rejects aborts the
 * others' signals and starts no more; the pool then waits until every job
 * in flight has settled and rejects with that first rejection, as it was.
 *
 * @param items what to work on
 * @param job the work for one item; `index` is the item's place in `items`
 * @param options bound, signal, fail-fast test
 * @returns one result per item, in item order
 * @throws {ConfigurationError} for a bad `concurrency`, before any job starts
 *
 * @example Fail fast: the first failure aborts the siblings' signals
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { mapPool } from "../../mod.ts";
 * const seen = await mapPool(
 *   ["bad", "slow"],
 *   async (name, signal) => {
 *     if (name === "bad") return "failed";
 *     await new Promise((r) => signal.addEventListener("abort", r));
 *     return "aborted";
 *   },
 *   { stopWhen: (r) => r === "failed" },
 * );
 * assertEquals(seen, ["failed", "aborted"]);
 * ```
 */
export async function mapPool<T, R>(
  items: readonly T[],
  job: (item: T, signal: AbortSignal, index: number) => Promise<R>,
  options: PoolOptions<R> = {},
): Promise<R[]> {
  const { concurrency = DEFAULT_CONCURRENCY, signal: outer, stopWhen } =
    options;
  validateConcurrency(concurrency);
  const group = new AbortController();
  const signal = outer ? AbortSignal.any([outer, group.signal]) : group.signal;
  const results: R[] = new Array(items.length);
  let next = 0;
  const rejections: unknown[] = [];
  const worker = async () => {
    while (next < items.length && rejections.length === 0) {
      const i = next++;
      try {
        // An aborted signal is still passed on: the job reports its item
        // as stopped instead of leaving it out.
        results[i] = await job(items[i], signal, i);
        if (stopWhen?.(results[i])) group.abort();
      } catch (e) {
        rejections.push(e);
        group.abort();
      }
    }
  };
  const workers = Array.from(
    { length: Math.min(concurrency, items.length) },
    worker,
  );
  await Promise.all(workers);
  if (rejections.length > 0) throw rejections[0];
  return results;
}
