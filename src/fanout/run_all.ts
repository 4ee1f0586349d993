/**
 * Fan-out: one command on many nodes at once, with a bound on how many run
 * together.
 *
 * {@linkcode runAll} has the two shapes of structured concurrency: by
 * default every outcome is collected (like `Promise.allSettled`, or
 * asyncio's `gather(return_exceptions=True)`); with `failFast` the first
 * failure aborts every sibling, which kills its remote process, the way a
 * task group cancels its members.
 *
 * @example
 * ```ts
 * import { runAll, SshNode } from "../../mod.ts";
 * const nodes = ["a", "b", "c"].map((name) =>
 *   new SshNode({ name, host: "localhost", transport: "local" })
 * );
 * const results = await runAll(nodes, "uname -s", { concurrency: 2 });
 * console.log(results.map((r) => `${r.node}: ${r.stdout.trim()}`));
 * ```
 *
 * @module
 */

import { ConfigurationError } from "../errors.ts";
import { fanOut, validateFanOut } from "./_fan_out.ts";
import { DEFAULT_CONCURRENCY } from "./pool.ts";
import type { SshNode } from "../node/node.ts";
import {
  type RunOptions,
  type RunResult,
  validateRunOptions,
} from "../process/run_options.ts";
import { validateCommand } from "../transport/validate.ts";

export { DEFAULT_CONCURRENCY } from "./pool.ts";

/** What {@linkcode runAll} needs of a node: an {@linkcode SshNode} has it. */
export type FanoutNode = Pick<SshNode, "name" | "prepare" | "rexec">;

/** Options of {@linkcode runAll}: the fan-out's own, then every run's. */
export interface RunAllOptions extends RunOptions {
  /**
   * Most runs in flight at once (default {@linkcode DEFAULT_CONCURRENCY}),
   * and as many again behind each gateway (a node's `gateway`: its program
   * runs their clients); a positive integer: there is no unbounded mode.
   */
  concurrency?: number;
  /**
   * On the first run that does not succeed, abort all the others: running
   * ones are stopped (remote process killed), waiting ones never spawn.
   * Default false: every node runs to its own end.
   */
  failFast?: boolean;
}

/**
 * Run `cmd` on every node, at most `concurrency` at a time, and resolve with
 * one {@linkcode RunResult} per node, in the order of `nodes`.
 *
 * `cmd` is one command for every node, used as given, or a function that
 * gives each node its own: it is called for every node, in node order,
 * before the first node is touched, so a command it refuses (it throws, e.g.
 * {@linkcode expandNodeValues} for an unknown key) fails the call with
 * nothing run anywhere. Each result's `cmd` is its node's command.
 *
 * Like `rexec`, it resolves for every run-time outcome and rejects only for
 * bad input ({@linkcode ConfigurationError}), before anything is spawned.
 * Every node reads the same `stdin`, so it must be a string or bytes: a
 * stream can be read only once and is refused with a `TypeError`.
 * With `failFast`, the first result that is not a success aborts the
 * siblings; the promise then resolves once every sibling is torn down, with
 * the failure in its node's slot and `aborted: true` for the siblings (those
 * that never began have `started: false`). Aborting `signal` does the same
 * to every run.
 *
 * @param nodes where to run, in the order results are wanted
 * @param cmd the shell command, or a function giving each node's command
 * @param options fan-out limits, then per-run options passed to each `rexec`
 * @returns one result per node, in node order
 *
 * @example
 * ```ts
 * import { runAll, SshNode } from "../../mod.ts";
 * const nodes = [
 *   new SshNode({ name: "a", host: "localhost", transport: "local" }),
 *   new SshNode({ name: "b", host: "localhost", transport: "local" }),
 * ];
 * const results = await runAll(nodes, "echo hi", { concurrency: 2 });
 * console.log(results.map((r) => `${r.node}: ${r.stdout.trim()}`)); // in node order
 * ```
 *
 * @example A command per node, from the node's own values
 * ```ts
 * import { expandNodeValues, runAll, SshNode } from "../../mod.ts";
 * const nodes = ["a", "b"].map((name, i) =>
 *   new SshNode({
 *     name,
 *     host: "localhost",
 *     transport: "local",
 *     vars: { slot: String(i + 1) },
 *   })
 * );
 * const results = await runAll(
 *   nodes,
 *   (node) => expandNodeValues("echo {name} in slot {slot}", node),
 * );
 * console.log(results.map((r) => r.stdout.trim())); // ["a in slot 1", "b in slot 2"]
 * ```
 */
export async function runAll<N extends FanoutNode>(
  nodes: readonly N[],
  cmd: string | ((node: N) => string),
  options: RunAllOptions = {},
): Promise<RunResult[]> {
  const { concurrency = DEFAULT_CONCURRENCY, failFast = false, ...run } =
    options;
  validateFanOut(nodes, concurrency, failFast);
  const jobs = commandsFor(nodes, cmd);
  refuseReadOnce(run.stdin);
  validateRunOptions(run);
  // Every node's configuration first: a bad one must fail the call before
  // any other node has been touched.
  await Promise.all(nodes.map((node) => node.prepare()));

  return await fanOut(
    jobs,
    { concurrency, failFast, signal: run.signal },
    ({ node, cmd }, signal) => node.rexec(cmd, { ...run, signal }),
    (result) => !result.success && !result.aborted,
  );
}

/**
 * Each node with its command, every command made and checked before any
 * node is touched; a bad one is a {@linkcode ConfigurationError} naming
 * its node.
 */
function commandsFor<N extends FanoutNode>(
  nodes: readonly N[],
  cmd: string | ((node: N) => string),
): { node: N; cmd: string }[] {
  if (typeof cmd !== "function") {
    validateCommand(cmd);
    return nodes.map((node) => ({ node, cmd }));
  }
  return nodes.map((node) => {
    const one = cmd(node);
    try {
      validateCommand(one);
    } catch (e) {
      throw new ConfigurationError(
        `The command for node "${node.name}" is refused: ${
          (e as Error).message
        }`,
        { cause: e },
      );
    }
    return { node, cmd: one };
  });
}

/**
 * Refuse a `stdin` that can be read only once (a stream, an async
 * iterable, a `{ size, stream }` payload): the second node would get
 * nothing and be aborted. A `TypeError` naming the option, before any node
 * is touched.
 */
function refuseReadOnce(stdin: unknown): void {
  if (
    typeof stdin !== "object" || stdin === null || stdin instanceof Uint8Array
  ) return;
  const readOnce = stdin instanceof ReadableStream ||
    Symbol.asyncIterator in stdin || "stream" in stdin;
  if (readOnce) {
    throw new TypeError(
      "Invalid stdin for runAll: a stream can be read only once and every node reads stdin; give a string or a Uint8Array",
    );
  }
}
