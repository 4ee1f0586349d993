/**
 * Retry: run a command again when the connection failed before it began.
 *
 * A run whose command never started (`started: false`) with a
 * {@linkcode ConnectionError} (refused, unreachable, reset, the node
 * rebooting) did nothing on the node, so running it again is safe. Anything
 * else is final by default: an authentication or host-key failure will not
 * heal by waiting, a connect timeout may hide a command that did begin, and a
 * command that started must never run twice behind the caller's back. The
 * caller can opt in to re-running a started command whose connection was
 * lost (`retryStarted`).
 *
 * The wait before retry `k` (1-based) is `baseDelay · 2^(k-1)`, capped at
 * `maxDelay`: 1 s, 2 s, then 4 s for every later retry by default; explicit
 * `delays` replace the formula. `SshNode.rexec` uses {@linkcode retryRun}
 * with {@linkcode DEFAULT_RETRY}; pass `retry: false` in its options for a
 * single attempt.
 *
 * @example
 * ```ts
 * import { SshNode } from "../mod.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * // Five attempts, 200 ms, 400 ms, 800 ms, 800 ms apart.
 * const result = await node.rexec("uptime", {
 *   retry: { attempts: 5, baseDelay: 200, maxDelay: 800 },
 * });
 * console.log(result.attempts, result.success);
 * ```
 *
 * @module
 */

import { delay } from "jsr:@std/async@^1/delay";
import { getLogger } from "npm:@logtape/logtape@^2";
import { ConfigurationError, ConnectionError } from "./errors.ts";
import type { SshNode } from "./node.ts";
import { controlPool } from "./pool.ts";
import { type RunOptions, type RunResult, SshSession } from "./session.ts";

/** When and how often a run is attempted again. Times are milliseconds. */
export interface RetryOptions {
  /** Attempts in all, the first included (default 3); 1 means no retry. */
  attempts?: number;
  /** Wait before the first retry; doubles for each later one (default 1000). */
  baseDelay?: number;
  /** Longest wait between two attempts (default 4000). */
  maxDelay?: number;
  /**
   * Explicit waits: before retry `k` the `k`-th entry (the last one repeats).
   * Overrides `baseDelay`/`maxDelay`; without `attempts`, one attempt more
   * than there are entries.
   */
  delays?: number[];
  /**
   * Also re-run a command that had started when its connection was lost
   * (the client ended with ssh's exit code 255). Only for commands that are
   * safe to run twice. Default false.
   */
  retryStarted?: boolean;
}

/** A validated retry policy with every field resolved. */
export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  /** Wait before retry `k` (1-based) is `delays[min(k, len) - 1]`. */
  delays: number[];
  /** Re-run a started command whose connection was lost. */
  retryStarted: boolean;
}

/** The defaults of `rexec`: 3 attempts, 1 s then 2 s apart (4 s cap). */
export const DEFAULT_RETRY: Readonly<Required<Omit<RetryOptions, "delays">>> =
  Object.freeze({
    attempts: 3,
    baseDelay: 1000,
    maxDelay: 4000,
    retryStarted: false,
  });

/** Retries are capped so a typo cannot keep a run going for hours. */
const MAX_ATTEMPTS = 100;

const log = getLogger(["fiwi", "retry"]);

function badOption(name: string, value: unknown, what: string): never {
  throw new ConfigurationError(
    `Invalid retry ${name} ${JSON.stringify(value)}: ${what}`,
  );
}

function checkDelay(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    badOption(name, value, "give milliseconds as a finite number >= 0");
  }
  return value;
}

/**
 * Validate retry options and resolve them into a {@linkcode RetryPolicy};
 * `false` means a single attempt. Throws {@linkcode ConfigurationError} for
 * a bad value.
 */
export function resolveRetry(
  options: RetryOptions | false | undefined,
): RetryPolicy {
  if (options === false) {
    return { attempts: 1, delays: [], retryStarted: false };
  }
  if (options === undefined) options = {};
  if (typeof options !== "object" || options === null) {
    badOption("options", options, "give an object or false");
  }
  const { attempts, baseDelay, maxDelay, delays, retryStarted } = options;
  let waits: number[];
  if (delays !== undefined) {
    if (!Array.isArray(delays) || delays.length === 0) {
      badOption("delays", delays, "give a non-empty array of milliseconds");
    }
    waits = delays.map((d) => checkDelay("delay", d));
  } else {
    const base = checkDelay("baseDelay", baseDelay ?? DEFAULT_RETRY.baseDelay);
    const cap = checkDelay("maxDelay", maxDelay ?? DEFAULT_RETRY.maxDelay);
    const n = Math.max(1, (attempts ?? DEFAULT_RETRY.attempts) - 1);
    waits = Array.from(
      { length: Math.min(n, MAX_ATTEMPTS) },
      (_, k) => Math.min(cap, base * 2 ** k),
    );
  }
  const total = attempts ??
    (delays !== undefined ? waits.length + 1 : DEFAULT_RETRY.attempts);
  if (!Number.isInteger(total) || total < 1 || total > MAX_ATTEMPTS) {
    badOption(
      "attempts",
      attempts,
      `give a whole number from 1 to ${MAX_ATTEMPTS}`,
    );
  }
  if (retryStarted !== undefined && typeof retryStarted !== "boolean") {
    badOption("retryStarted", retryStarted, "give true or false");
  }
  return { attempts: total, delays: waits, retryStarted: !!retryStarted };
}

/** The wait in ms before retry `k` (1-based) under `policy`. */
export function retryDelay(policy: RetryPolicy, k: number): number {
  if (policy.delays.length === 0) return 0;
  return policy.delays[Math.min(k, policy.delays.length) - 1];
}

/**
 * Whether `result` may be attempted again under `policy`: the command never
 * began and the connection failed ({@linkcode ConnectionError}); or, with
 * `retryStarted`, the command began and ended with ssh's exit code 255, the
 * code of a lost connection. (A client multiplexed over a ControlMaster says
 * nothing else when the master's connection drops, so a command that itself
 * exits 255 is re-run too: `retryStarted` is for commands safe to repeat.)
 * Timeouts, aborts and authentication or host-key failures are final.
 */
export function isRetryable(result: RunResult, policy: RetryPolicy): boolean {
  if (result.aborted || result.timedOut !== null) return false;
  if (!result.started) return result.error instanceof ConnectionError;
  return policy.retryStarted && result.code === 255;
}

/** Hooks of {@linkcode retryRun}. */
export interface RetryRunOptions {
  /** Aborting it ends the wait between attempts; the last result is returned. */
  signal?: AbortSignal;
  /**
   * Called after a failed attempt. Returning true makes a result that
   * {@linkcode isRetryable} refuses retryable after all (the pool uses it
   * when it found and replaced a hung master behind a connect timeout).
   */
  onFailure?: (result: RunResult, attempt: number) => Promise<boolean>;
}

/**
 * Run `attempt` until it succeeds, fails for good, or `policy.attempts` are
 * used up, waiting between attempts. Resolves with the last result, with
 * `attempts` set to the number of attempts made, `startedAt` of the first
 * and `durationMs` over all of them. An abort during a wait resolves with
 * the last result marked `aborted`. Rejections of `attempt` (bad input)
 * pass through.
 */
export async function retryRun(
  attempt: (n: number) => Promise<RunResult>,
  policy: RetryPolicy,
  options: RetryRunOptions = {},
): Promise<RunResult> {
  const t0 = performance.now();
  let first: Date | undefined;
  let result: RunResult;
  for (let n = 1;; n++) {
    result = await attempt(n);
    first ??= result.startedAt;
    const finish = (extra: Partial<RunResult> = {}): RunResult => ({
      ...result,
      ...extra,
      attempts: n,
      startedAt: first!,
      durationMs: performance.now() - t0,
    });
    if (result.success || n >= policy.attempts) return finish();
    let again = isRetryable(result, policy);
    if (options.onFailure && !result.aborted) {
      // Always called, so a hook can repair what broke before the next try.
      again = (await options.onFailure(result, n)) || again;
    }
    if (!again) return finish();
    const wait = retryDelay(policy, n);
    log.warn(
      "Retrying {cmd} on {node} in {delayMs} ms (attempt {attempt} of {attempts} failed: {error})",
      {
        node: result.node,
        cmd: result.cmd,
        delayMs: wait,
        attempt: n,
        attempts: policy.attempts,
        error: result.error?.message ?? `exit ${result.code}`,
      },
    );
    try {
      await delay(wait, { signal: options.signal });
    } catch {
      return finish({ aborted: true, success: false });
    }
  }
}

/**
 * `SshNode.rexec`: run `cmd` in a fresh {@linkcode SshSession} per attempt
 * under the retry policy of `options.retry` (default
 * {@linkcode DEFAULT_RETRY}; `false`: one attempt). After a run that never
 * started on a node with a ControlMaster, the pool repairs a broken master
 * before the next attempt.
 */
export async function rexecWithRetry(
  node: SshNode,
  cmd: string,
  options: RunOptions = {},
): Promise<RunResult> {
  const { retry, ...runOptions } = options;
  const policy = resolveRetry(retry);
  return await retryRun(
    async () => {
      await using session = new SshSession(node);
      return await session.postCmd(cmd, runOptions);
    },
    policy,
    {
      signal: options.signal,
      onFailure: node.controlMaster
        ? (result) => controlPool.recover(node, result)
        : undefined,
    },
  );
}
