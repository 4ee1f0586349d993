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
 * with the run's `retry`, else the node's (`SshNodeOptions.retry`, default
 * {@linkcode DEFAULT_RETRY}); `retry: false` means a single attempt.
 *
 * Each failed connection's message is shown once. ssh says why it could not
 * connect on stderr, and every attempt says it again: `rexec` hands a stderr
 * line to `onLine` only if no earlier attempt that never started showed the
 * same text (until the attempt's first stdout line proves the command
 * began). A message that changes between attempts (refused, then timed out)
 * is shown each time it changes. The result is the last attempt's: its
 * `stderr` holds that attempt's message once, and `attempts` counts them.
 *
 * @example
 * ```ts
 * import { SshNode } from "../../mod.ts";
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

import { getLogger } from "npm:@logtape/logtape@^2";
import { ConnectionError } from "../errors.ts";
import { backoff, resolveRetry, type RetryPolicy } from "../process/backoff.ts";

const log = getLogger(["fiwi", "retry"]);
import { controlPool, type PoolNode } from "./pool.ts";
import type { RetryOptions } from "../process/backoff.ts";
import type { Line } from "../process/lines.ts";
import type { RunOptions, RunResult } from "../process/run_options.ts";
import { type SessionNode, SshSession } from "../process/session.ts";

/**
 * Whether `result` may be attempted again under `policy`: the command never
 * began and the connection failed ({@linkcode ConnectionError}); or, with
 * `retryStarted`, the command began and ended with ssh's exit code 255, the
 * code of a lost connection. (A client multiplexed over a ControlMaster says
 * nothing else when the master's connection drops, so a command that itself
 * exits 255 is re-run too: `retryStarted` is for commands safe to repeat.)
 * Timeouts, aborts and authentication or host-key failures are final.
 *
 * @example
 * ```ts
 * import { isRetryable, resolveRetry, SshNode } from "../../mod.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * const result = await node.rexec("exit 3");
 * console.log(isRetryable(result, resolveRetry({}))); // false: the command ran
 * ```
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
  const out = await backoff(
    async (n) => {
      const result = await attempt(n);
      first ??= result.startedAt;
      return result;
    },
    policy,
    {
      signal: options.signal,
      async again(result, n) {
        if (result.success) return false;
        let again = isRetryable(result, policy);
        if (options.onFailure && !result.aborted) {
          // Always called, so a hook can repair what broke before the next try.
          again = (await options.onFailure(result, n)) || again;
        }
        return again;
      },
      onRetry(result, n, wait) {
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
      },
    },
  );
  return {
    ...out.value,
    ...(out.aborted ? { aborted: true, success: false } : {}),
    attempts: out.attempts,
    startedAt: first!,
    durationMs: performance.now() - t0,
  };
}

/** What `rexec` needs of a node. `SshNode` satisfies it. */
export interface RetryNode extends SessionNode, PoolNode {
  /** Retry policy of a run that gives none (absent: {@linkcode DEFAULT_RETRY}). */
  readonly retry?: RetryOptions | false;
}

/**
 * `onLine` for each attempt of one run, without the stderr lines an earlier
 * attempt that never started showed already (see the module doc).
 */
class LinesOnce {
  #onLine: (line: Line) => void;
  #shown = new Set<string>();
  #attempt: string[] = [];

  constructor(onLine: (line: Line) => void) {
    this.#onLine = onLine;
  }

  /** The `onLine` of the next attempt. */
  next(): (line: Line) => void {
    const lines: string[] = this.#attempt = [];
    let began = false;
    return (line) => {
      if (line.stream === "stdout") began = true;
      else if (!began) {
        if (this.#shown.has(line.text)) return;
        lines.push(line.text);
      }
      this.#onLine(line);
    };
  }

  /** After an attempt: what one that never started said counts as shown. */
  settle(result: RunResult): void {
    if (result.started) return;
    for (const text of this.#attempt) this.#shown.add(text);
  }
}

/**
 * `SshNode.rexec`: run `cmd` in a fresh {@linkcode SshSession} per attempt
 * under the retry policy of `options.retry`, else the node's `retry` (default
 * {@linkcode DEFAULT_RETRY}; `false`: one attempt). After a run that never
 * started on a node with a ControlMaster, the pool repairs a broken master
 * before the next attempt.
 */
export async function rexecWithRetry(
  node: RetryNode,
  cmd: string,
  options: RunOptions = {},
): Promise<RunResult> {
  const { retry, ...runOptions } = options;
  const policy = resolveRetry(retry ?? node.retry);
  // A bad onLine is passed on as given, for postCmd's check to name it.
  const lines = typeof options.onLine === "function"
    ? new LinesOnce(options.onLine)
    : null;
  return await retryRun(
    async () => {
      await using session = new SshSession(node);
      const result = await session.postCmd(
        cmd,
        lines ? { ...runOptions, onLine: lines.next() } : runOptions,
      );
      lines?.settle(result);
      return result;
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
