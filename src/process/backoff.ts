/**
 * Backoff: the one retry loop of fiwi, and the policy that spaces its
 * attempts. `SshNode.rexec` retries, `openShell` retries and the process
 * watcher's restarts all go through it.
 *
 * The wait before retry `k` (1-based) is `baseDelay · 2^(k-1)`, capped at
 * `maxDelay`: 1 s, 2 s, then 4 s for every later retry by default; explicit
 * `delays` replace the formula.
 *
 * Why not `retry` from `@std/async`: it retries on a thrown error, where
 * fiwi's attempts resolve with a result (a failed run is a value, not an
 * exception) and the caller must get that last result back, with the number
 * of attempts; it cannot express explicit per-attempt `delays` or a zero
 * wait (its `maxTimeout` must be > 0). The loop below is the part of it we
 * need, with the same abortable wait (`delay` from `@std/async`).
 *
 * @module
 */

import { delay } from "jsr:@std/async@^1/delay";
import { ConfigurationError, showValue } from "../errors.ts";

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

/**
 * The defaults of `rexec`: 3 attempts, 1 s then 2 s apart (4 s cap).
 *
 * @example
 * ```ts
 * import { DEFAULT_RETRY } from "../../mod.ts";
 * console.log(DEFAULT_RETRY.attempts);
 * ```
 */
export const DEFAULT_RETRY: Readonly<Required<Omit<RetryOptions, "delays">>> =
  Object.freeze({
    attempts: 3,
    baseDelay: 1000,
    maxDelay: 4000,
    retryStarted: false,
  });

/** Retries are capped so a typo cannot keep a run going for hours. */
const MAX_ATTEMPTS = 100;

function badOption(name: string, value: unknown, what: string): never {
  throw new ConfigurationError(
    `Invalid retry ${name} ${showValue(value)}: ${what}`,
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
 *
 * @example
 * ```ts
 * import { resolveRetry } from "../../mod.ts";
 * console.log(resolveRetry(false)); // { attempts: 1, delays: [], retryStarted: false }
 * console.log(resolveRetry({ attempts: 2 }).attempts); // 2
 * ```
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

/** Hooks of {@linkcode backoff}. */
export interface BackoffOptions<T> {
  /** Aborting it ends the wait between attempts; the last value is returned. */
  signal?: AbortSignal;
  /** Whether to try again after `value`, the outcome of attempt `n`. */
  again(value: T, n: number): boolean | Promise<boolean>;
  /** Called before each wait, for logging. */
  onRetry?(value: T, n: number, delayMs: number): void;
}

/** What {@linkcode backoff} ended with. */
export interface BackoffOutcome<T> {
  /** The last attempt's value. */
  value: T;
  /** Attempts made. */
  attempts: number;
  /** True when the signal ended a wait. */
  aborted: boolean;
}

/**
 * Run `attempt` until `again` says no, `policy.attempts` are used up, or the
 * signal aborts a wait. Rejections of `attempt` pass through.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { backoff } from "./backoff.ts";
 * const out = await backoff((n) => Promise.resolve(n), {
 *   attempts: 3, delays: [0], retryStarted: false,
 * }, { again: (n) => n < 2 });
 * assertEquals([out.value, out.attempts], [2, 2]);
 * ```
 */
export async function backoff<T>(
  attempt: (n: number) => Promise<T>,
  policy: RetryPolicy,
  options: BackoffOptions<T>,
): Promise<BackoffOutcome<T>> {
  for (let n = 1;; n++) {
    const value = await attempt(n);
    if (n >= policy.attempts || !(await options.again(value, n))) {
      return { value, attempts: n, aborted: false };
    }
    const wait = retryDelay(policy, n);
    options.onRetry?.(value, n, wait);
    try {
      await delay(wait, { signal: options.signal });
    } catch {
      return { value, attempts: n, aborted: true };
    }
  }
}
