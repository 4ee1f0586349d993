/**
 * A test hook, outside the public API: make a managed process die the way an
 * unexpected crash would.
 *
 * @module
 */

import type { ProcessManager } from "./process_manager.ts";
import { crashScript } from "./_process_scripts.ts";
import { runScript } from "./_run_script.ts";

/**
 * KILL the process group of `id` and nothing else: the metadata stays, so
 * `pm` learns the exit the way it would learn of an unexpected crash.
 * Rejects with a `ConfigurationError` for an id `pm` does not know.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { type ProcessExit, ProcessManager, SshNode } from "../../mod.ts";
 * import { crash } from "./_crash.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * await using pm = new ProcessManager();
 * const ended = Promise.withResolvers<ProcessExit>();
 * pm.onExit(ended.resolve);
 * const id = await pm.start(node, "sleep 30");
 * await crash(pm, id);
 * const exit = await ended.promise;
 * assertEquals([exit.code, exit.source], [137, "monitor"]);
 * await pm.killAll(); // removes the metadata and the log
 * ```
 */
export async function crash(
  pm: Pick<ProcessManager, "info">,
  id: string,
): Promise<void> {
  const { node } = pm.info(id);
  await runScript(node, `crash process "${id}"`, crashScript(id));
}
