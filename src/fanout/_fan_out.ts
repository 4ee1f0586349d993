/**
 * The fan-out every many-node call shares (`runAll`, `pushAll`, `pullAll`):
 * their options checked one way, the open-file limit checked against the
 * fan-out, then {@linkcode mapPool} with `failFast` as its `stopWhen` and
 * each gateway as a route of its own.
 *
 * @module
 */

import { ConfigurationError } from "../errors.ts";
import { mapPool, validateConcurrency } from "./pool.ts";
import { checkOpenFiles } from "./_fd_limit.ts";

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
  validateConcurrency(concurrency);
  if (typeof failFast !== "boolean") {
    throw new ConfigurationError(
      `Invalid failFast ${JSON.stringify(failFast)}: give true or false`,
    );
  }
}

/**
 * The gateway whose program runs `item`'s client (its `node`'s, for a
 * `{ node }` wrapper), or undefined for a client fiwi spawns itself.
 */
export function routeOf(item: unknown): unknown {
  const node = (item as { node?: unknown })?.node ?? item;
  return (node as { gateway?: unknown })?.gateway;
}

/**
 * Call `job` on every item through {@linkcode mapPool}: at most
 * `limits.concurrency` at a time for the items fiwi spawns a client for
 * itself, and as many again for the items behind each gateway (the
 * gateway's own fan-out, as in clush's tree mode: the gateway, not the
 * controller, runs their clients), each with a signal that aborts with
 * `limits.signal` or, under `failFast`, once a result is `failed`. Resolves
 * with the results in item order; a job that rejects (bad input) aborts the
 * others and the rejection passes through once every job settled. Rejects
 * with {@linkcode ConfigurationError} before any job when the open-file
 * limit cannot carry the fan-out (src/fanout/_fd_limit.ts).
 */
export async function fanOut<T, R>(
  items: readonly T[],
  limits: FanOutLimits,
  job: (item: T, signal: AbortSignal) => Promise<R>,
  failed: (result: R) => boolean,
): Promise<R[]> {
  // Only the clients spawned here hold descriptors here (a gateway's
  // program is one client, within the reserve).
  const direct = items.filter((item) => routeOf(item) === undefined).length;
  checkOpenFiles(Math.min(limits.concurrency, direct));
  return await mapPool(items, job, {
    concurrency: limits.concurrency,
    signal: limits.signal,
    stopWhen: (r) => limits.failFast && failed(r),
    routeOf,
  });
}
