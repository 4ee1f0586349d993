/**
 * The bounded worker pool under every many-node call: `runAll`, `pushAll`,
 * `pullAll`, `discover`, and the `fiwi` command's own loops. At most
 * `concurrency` jobs are in flight (per gateway, given `routeOf`), results
 * come back in item order, and every job gets a signal that aborts with the
 * caller's signal or, when a result says so (`stopWhen`), for all the
 * others: the two shapes of structured concurrency, collect-everything and
 * fail-fast.
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
export interface PoolOptions<R, T = unknown> {
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
  /**
   * Items of different routes are bounded apart, each route by
   * `concurrency` (items whose route is the same value share one bound).
   * For nodes, the gateway that runs their clients: `(n) => n.gateway`
   * bounds each gateway on its own, as clush's tree mode does, and the
   * nodes reached directly (route undefined) together. Default: one route.
   */
  routeOf?: (item: T) => unknown;
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
 * Call `job` on every item, at most `concurrency` at a time (per route,
 * with `options.routeOf`), and resolve with the results in item order.
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
 *
 * @example Per route: each gateway's nodes have a bound of their own
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { mapPool } from "../../mod.ts";
 * const nodes = ["a", "b", "c", "d"].map((name, i) => ({
 *   name,
 *   gateway: i % 2 ? "gw1" : undefined,
 * }));
 * let inFlight = 0;
 * let peak = 0;
 * await mapPool(nodes, async () => {
 *   peak = Math.max(peak, ++inFlight);
 *   await Promise.resolve();
 *   inFlight--;
 * }, { concurrency: 1, routeOf: (node) => node.gateway });
 * assertEquals(peak, 2); // one reached directly, one behind gw1
 * ```
 */
export async function mapPool<T, R>(
  items: readonly T[],
  job: (item: T, signal: AbortSignal, index: number) => Promise<R>,
  options: PoolOptions<R, T> = {},
): Promise<R[]> {
  const { concurrency = DEFAULT_CONCURRENCY, signal: outer, stopWhen } =
    options;
  validateConcurrency(concurrency);
  const group = new AbortController();
  const signal = outer ? AbortSignal.any([outer, group.signal]) : group.signal;
  const results: R[] = new Array(items.length);
  const rejections: unknown[] = [];
  // One queue of item indexes per route, each with its own workers.
  const workersOf = (lane: number[]) => {
    let next = 0;
    const worker = async () => {
      while (next < lane.length && rejections.length === 0) {
        const i = lane[next++];
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
    return Array.from({ length: Math.min(concurrency, lane.length) }, worker);
  };
  await Promise.all(lanes(items, options.routeOf).flatMap(workersOf));
  if (rejections.length > 0) throw rejections[0];
  return results;
}

/** The indexes of `items` grouped by route, in item order within each. */
function lanes<T>(
  items: readonly T[],
  routeOf: ((item: T) => unknown) | undefined,
): number[][] {
  const byRoute = new Map<unknown, number[]>();
  items.forEach((item, i) => {
    const route = routeOf?.(item);
    byRoute.get(route)?.push(i) ?? byRoute.set(route, [i]);
  });
  return [...byRoute.values()];
}
