/**
 * Reachable: wait until a node really runs commands again, for a node that
 * is booting after a power cycle or a reboot.
 *
 * Each attempt runs `true` with one connection attempt (`retry: false`) and
 * a connect timeout no longer than what is left, so a dead node costs at
 * most one short attempt per interval. An open port is not enough: only a
 * command that began counts. After a failed attempt on a node with a
 * ControlMaster the pool puts the master in order: a stale socket is
 * removed, a hung master killed, and a master that answers but cannot start
 * sessions (its connection died with the node) is ended, so the next
 * attempt opens a fresh one. Every attempt's client is torn down by the one
 * spawn path, so nothing is left from failed attempts.
 *
 * @module
 */

import { ConfigurationError, showValue } from "../errors.ts";
import { backoff, type RetryPolicy } from "../process/backoff.ts";
import type { RunOptions, RunResult } from "../process/run_options.ts";
import { controlPool, type PoolNode } from "./pool.ts";

/** Options of {@linkcode waitReachable}. Times are milliseconds. */
export interface WaitReachableOptions {
  /** Give up after this long (default 300 000: 5 min). */
  timeout?: number;
  /** Pause between two attempts (default 1000). */
  interval?: number;
  /** Aborting it ends the wait; the promise then resolves false. */
  signal?: AbortSignal;
}

/** What {@linkcode waitReachable} needs of a node. `SshNode` satisfies it. */
export interface ReachableNode extends PoolNode {
  /** Default connect timeout of the node (ms). */
  readonly connectTimeout: number;
  /** Run a command (see `SshNode.rexec`). */
  rexec(cmd: string, options?: RunOptions): Promise<RunResult>;
}

/**
 * Default of {@linkcode WaitReachableOptions.timeout}: 5 min.
 *
 * @example
 * ```ts
 * import { DEFAULT_REACHABLE_TIMEOUT } from "../../mod.ts";
 * console.log(DEFAULT_REACHABLE_TIMEOUT / 1000); // 300 (seconds)
 * ```
 */
export const DEFAULT_REACHABLE_TIMEOUT = 300_000;
/**
 * Default of {@linkcode WaitReachableOptions.interval}: 1 s.
 *
 * @example
 * ```ts
 * import { DEFAULT_REACHABLE_INTERVAL } from "../../mod.ts";
 * console.log(DEFAULT_REACHABLE_INTERVAL); // 1000 ms between tries
 * ```
 */
export const DEFAULT_REACHABLE_INTERVAL = 1000;
/** Shortest connect timeout of one attempt. */
const MIN_ATTEMPT_MS = 500;

function checkMs(name: string, value: unknown, min: number): void {
  if (
    typeof value !== "number" || !Number.isFinite(value) || value < min ||
    value > 2 ** 31 - 1
  ) {
    throw new ConfigurationError(
      `Invalid waitReachable ${name} ${
        showValue(value)
      }: give milliseconds from ${min} to ${2 ** 31 - 1}`,
    );
  }
}

/**
 * Poll `node` until a command starts and succeeds on it. Resolves true as
 * soon as one does; false when `timeout` passes or `signal` aborts first.
 * Rejects only for bad options ({@linkcode ConfigurationError}).
 */
export async function waitReachable(
  node: ReachableNode,
  options: WaitReachableOptions = {},
): Promise<boolean> {
  const timeout = options.timeout ?? DEFAULT_REACHABLE_TIMEOUT;
  const interval = options.interval ?? DEFAULT_REACHABLE_INTERVAL;
  checkMs("timeout", timeout, 1);
  checkMs("interval", interval, 0);
  if (options.signal?.aborted) return false;
  const stop = new AbortController();
  const deadline = performance.now() + timeout;
  const timer = setTimeout(() => stop.abort(), timeout);
  const onAbort = () => stop.abort();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  // As many attempts as fit before the deadline: the timer ends the loop.
  const policy: RetryPolicy = {
    attempts: Number.MAX_SAFE_INTEGER,
    delays: [interval],
    retryStarted: false,
  };
  try {
    const out = await backoff(
      () => attempt(node, deadline - performance.now(), stop.signal),
      policy,
      { signal: stop.signal, again: (ok) => !ok && !stop.signal.aborted },
    );
    return out.value && !out.aborted;
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
}

async function attempt(
  node: ReachableNode,
  left: number,
  signal: AbortSignal,
): Promise<boolean> {
  if (signal.aborted || left <= 0) return false;
  const connectTimeout = Math.max(
    MIN_ATTEMPT_MS,
    Math.min(node.connectTimeout || left, left),
  );
  const result = await node.rexec("true", {
    retry: false,
    connectTimeout,
    cmdTimeout: Math.max(MIN_ATTEMPT_MS, left),
    signal,
  });
  if (result.success) return true;
  if (!result.started && node.controlMaster && !signal.aborted) {
    await replaceMaster(node);
  }
  return false;
}

/** After a run that never started: leave no broken master for the next one. */
async function replaceMaster(node: ReachableNode): Promise<void> {
  const status = await controlPool.repair(node);
  // It answers, yet the run failed: its connection is gone with the node.
  if (status?.state === "alive") await controlPool.exit(node.spec);
}
