/**
 * Helpers the scripts share around runs: how a run ended in a few words, a
 * run as JSON, a node with changed options, a bounded map, and a fan-out
 * stand-in for a node that reports each result (for the progress line).
 *
 * @module
 */

import {
  AuthenticationError,
  ConnectionError,
  HostKeyError,
} from "../src/errors.ts";
import { SshNode, type SshNodeOptions } from "../src/node/node.ts";
import type { RunOptions, RunResult } from "../src/process/session.ts";
import type { FanoutNode } from "../src/fanout/run_all.ts";
import { isoLocal } from "./_log.ts";

/** How a run ended, in a few words: "exit 0", "exit 2", "unreachable", "command timeout". */
export function outcome(r: RunResult): string {
  if (r.timedOut) return `${r.timedOut} timeout`;
  if (r.aborted) return "interrupted";
  if (r.error instanceof ConnectionError) return "unreachable";
  if (r.error instanceof AuthenticationError) return "auth failed";
  if (r.error instanceof HostKeyError) return "host key rejected";
  if (r.signal) return `killed by ${r.signal}`;
  return `exit ${r.code}`;
}

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

/** Call `fn` on every item, at most `limit` at a time; results in item order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, worker),
  );
  return results;
}

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
    outcome: outcome(r),
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
