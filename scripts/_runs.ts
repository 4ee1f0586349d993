/**
 * Helpers the scripts share around runs: a run as JSON, a fan-out stand-in
 * for a node that reports each result (for the progress line), and the
 * exit status `-S` gives. How a run ended is the library's
 * {@linkcode describeOutcome}.
 *
 * @module
 */

import {
  describeOutcome,
  type FanoutNode,
  type RunOptions,
  type RunResult,
  type SshNode,
} from "../mod.ts";
import { isoLocal } from "./_log.ts";

/**
 * A stand-in for `node` in `runAll` that reports every result to
 * `onResult` as it comes (for the progress line).
 */
export function observed(
  node: SshNode,
  onResult: (result: RunResult) => void,
): FanoutNode {
  return {
    name: node.name,
    prepare: () => node.prepare(),
    rexec: async (cmd: string, options?: RunOptions) => {
      const result = await node.rexec(cmd, options);
      onResult(result);
      return result;
    },
  };
}

/** A RunResult as plain JSON: the error as its class name and message. */
export function resultJson(r: RunResult): Record<string, unknown> {
  return {
    node: r.node,
    cmd: r.cmd,
    success: r.success,
    code: r.code,
    signal: r.signal,
    outcome: describeOutcome(r).key,
    stdout: r.stdout,
    stderr: r.stderr,
    truncated: r.truncated,
    timedOut: r.timedOut,
    aborted: r.aborted,
    killed: r.killed,
    notice: r.notice,
    error: r.error ? { kind: r.error.name, message: r.error.message } : null,
    startedAt: isoLocal(r.startedAt.getTime()),
    durationMs: Math.round(r.durationMs),
  };
}

/** What `-S` counts for a node that failed without an exit code of its own. */
export const NO_EXIT_CODE = 255;

/**
 * The exit status of `run -S` (pdsh -S, clush -S): the largest exit code
 * of the remote commands. A node that ran to its end counts its code; one
 * that failed without a code of its own (not reached, refused
 * authentication, timed out, killed by a signal) counts as 255, as a
 * failed `ssh` does; one stopped by fiwi (`--fail-fast` or a signal) does
 * not count, so the failure that stopped it speaks. 0 when there is none.
 */
export function maxExitCode(results: readonly RunResult[]): number {
  let max = 0;
  for (const r of results) {
    if (r.success || (r.aborted && !r.timedOut)) continue;
    const own = r.error === null && r.signal === null && r.code !== null &&
      r.code > 0;
    max = Math.max(max, own ? r.code! : NO_EXIT_CODE);
  }
  return max;
}
