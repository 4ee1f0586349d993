/**
 * One script of the process manager run on a node, and the error that says
 * which step failed there.
 *
 * @module
 */

import { FiwiError } from "../errors.ts";
import type { SshNode } from "../node/node.ts";
import type { RunResult } from "../process/run_options.ts";

/**
 * The error for a run of `what` that failed on `node`: its own error, else
 * its stderr, else its exit code.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { SshNode } from "../../mod.ts";
 * import { failure } from "./_run_script.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * const r = await node.rexec("exit 3");
 * assertEquals(
 *   failure("check a process", node, r).message,
 *   'Cannot check a process on node "here": exit code 3',
 * );
 * ```
 */
export function failure(what: string, node: SshNode, r: RunResult): FiwiError {
  const why = r.error?.message ?? (r.stderr.trim() || `exit code ${r.code}`);
  return new FiwiError(`Cannot ${what} on node "${node.name}": ${why}`, {
    cause: r.error ?? undefined,
  });
}

/**
 * Run `script` on `node` and resolve with its stdout; reject with
 * {@linkcode failure} when it does not succeed.
 *
 * @example
 * ```ts
 * import { assertEquals, assertRejects } from "jsr:@std/assert@^1";
 * import { FiwiError, SshNode } from "../../mod.ts";
 * import { runScript } from "./_run_script.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * assertEquals(await runScript(node, "greet", "echo hi"), "hi\n");
 * await assertRejects(
 *   () => runScript(node, "fail", "echo nope >&2; exit 1"),
 *   FiwiError,
 *   'Cannot fail on node "here": nope',
 * );
 * ```
 */
export async function runScript(
  node: SshNode,
  what: string,
  script: string,
  cmdTimeout = 30_000,
): Promise<string> {
  const r = await node.rexec(script, { cmdTimeout });
  if (!r.success) throw failure(what, node, r);
  return r.stdout;
}
