/**
 * Helpers the scripts share around runs: a run as JSON, a node with changed
 * options, and a fan-out stand-in for a node that reports each result (for
 * the progress line). How a run ended is the library's
 * {@linkcode describeOutcome}; a bounded map is its {@linkcode mapPool}.
 *
 * @module
 */

import { describeOutcome, mapPool } from "../mod.ts";
import { SshNode, type SshNodeOptions } from "../src/node/node.ts";
import type { RunOptions, RunResult } from "../src/process/session.ts";
import type { FanoutNode } from "../src/fanout/run_all.ts";
import { isoLocal } from "./_log.ts";

/**
 * How a run ended, in a few words: {@linkcode describeOutcome}'s key
 * ("exit 0", "unreachable", "command timeout", "aborted"). Kept for the
 * subcommands that still import it; new code calls `describeOutcome`.
 */
export const outcome = (r: RunResult): string => describeOutcome(r).key;

/** A copy of `node` with some options changed (e.g. no ControlMaster). */
export function nodeWith(
  node: SshNode,
  overrides: Partial<SshNodeOptions>,
): SshNode {
  return new SshNode({
    name: node.name,
    host: node.host,
    user: node.user,
    port: node.port,
    transport: node.transport,
    relay: node.relay,
    relayMode: node.relayMode,
    ushPath: node.ushPath,
    controlMaster: node.controlMaster,
    controlPersist: node.controlPersist,
    silent: node.silent,
    console: node.console,
    consoleCommand: node.consoleCommand,
    device: node.device,
    devip: node.devip,
    sshConfig: node.sshConfig,
    identityFile: node.identityFile,
    sshOptions: { ...node.sshOptions },
    hostKeyCheck: node.hostKeyCheck,
    connectTimeout: node.connectTimeout,
    ioTimeout: node.ioTimeout,
    cmdTimeout: node.cmdTimeout,
    controlDir: node.controlDir,
    ...overrides,
  });
}

/**
 * Call `fn` on every item, at most `limit` at a time; results in item order.
 * The library's {@linkcode mapPool}, in the argument order the subcommands
 * that still import it use; new code calls `mapPool`.
 */
export const mapLimit = <T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> =>
  mapPool(items, (item, _signal, index) => fn(item, index), {
    concurrency: limit,
  });

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
