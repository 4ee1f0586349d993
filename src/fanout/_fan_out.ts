/**
 * The fan-out loop every many-node call shares (`runAll`, `pushAll`,
 * `pullAll`): at most `concurrency` jobs in flight, results in item order,
 * and with `failFast` the first failure aborts every sibling.
 *
 * @module
 */

import { ConfigurationError } from "../errors.ts";

/** The fan-out's own options. */
export interface FanOutLimits {
  /** Most jobs in flight at once (a whole number >= 1). */
  concurrency: number;
  /** The first failure aborts the others. */
  failFast: boolean;
  /** Aborting it aborts every job. */
  signal?: AbortSignal;
}

/**
 * Check the list of nodes and the fan-out options; throws
 * {@linkcode ConfigurationError} naming the bad value.
 */
export function validateFanOut(
  nodes: unknown,
  concurrency: unknown,
  failFast: unknown,
): void {
  if (!Array.isArray(nodes)) {
    throw new ConfigurationError(
      `Invalid nodes ${JSON.stringify(nodes)}: give an array of nodes`,
    );
  }
  if (!Number.isInteger(concurrency) || (concurrency as number) < 1) {
    throw new ConfigurationError(
      `Invalid concurrency ${
        JSON.stringify(concurrency)
      }: give a whole number >= 1`,
    );
  }
  if (typeof failFast !== "boolean") {
    throw new ConfigurationError(
      `Invalid failFast ${JSON.stringify(failFast)}: give true or false`,
    );
  }
}

/**
 * Call `job` on every item, at most `limits.concurrency` at a time, each
 * with a signal that aborts with `limits.signal` or, under `failFast`, once
 * a result is `failed`. Resolves with the results in item order; a job that
 * rejects (bad input) aborts the others and the rejection passes through
 * once every job settled.
 */
export async function fanOut<T, R>(
  items: readonly T[],
  limits: FanOutLimits,
  job: (item: T, signal: AbortSignal) => Promise<R>,
  failed: (result: R) => boolean,
): Promise<R[]> {
  const group = new AbortController();
  const signal = limits.signal
    ? AbortSignal.any([limits.signal, group.signal])
    : group.signal;
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      let result: R;
      try {
        // An aborted signal starts nothing: waiting items still get a result.
        result = await job(items[i], signal);
      } catch (e) {
        group.abort();
        throw e;
      }
      results[i] = result;
      if (limits.failFast && failed(result)) group.abort();
    }
  };
  const workers = Array.from(
    { length: Math.min(limits.concurrency, items.length) },
    worker,
  );
  const settled = await Promise.allSettled(workers);
  const failure = settled.find((s) => s.status === "rejected");
  if (failure) throw failure.reason;
  return results;
}
