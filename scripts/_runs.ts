/**
 * Helpers the scripts share around runs: a run as JSON, and a fan-out
 * stand-in for a node that reports each result (for the progress line).
 * How a run ended is the library's {@linkcode describeOutcome}.
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
