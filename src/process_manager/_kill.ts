/**
 * Stopping processes: one kill on its node (QUIT, then KILL), and the order
 * of `killAll` (roles one after the other, parallel inside a role), with the
 * removal of the log files fiwi chose for what it stopped.
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import { ConfigurationError, FiwiError } from "../errors.ts";
import type { SshNode } from "../node/node.ts";
import type { ExitStatus, ProcessInfo } from "./_process_meta.ts";
import { cleanupScript, killScript } from "./_process_scripts.ts";
import { failure, runScript } from "./_run_script.ts";

const log = getLogger(["fiwi", "process"]);

/**
 * Stop process `id` on `node` with {@linkcode killScript} and resolve with
 * the status the node reports. Rejects when the node cannot run the script
 * or the process survives KILL.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { ProcessManager, SshNode } from "../../mod.ts";
 * import { killOnNode } from "./_kill.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * await using pm = new ProcessManager({ watch: false });
 * const id = await pm.start(node, "sleep 30");
 * assertEquals(await killOnNode(node, id, 2000), { code: 131, source: "quit" });
 * await pm.killAll(); // forgets it and removes its log
 * ```
 */
export async function killOnNode(
  node: SshNode,
  id: string,
  timeout: number,
): Promise<ExitStatus> {
  const out = await runScript(
    node,
    `kill process "${id}"`,
    killScript(id, timeout),
    2 * timeout + 30_000,
  );
  const [how, rc] = out.trim().split(" ");
  if (how === "stuck") {
    throw new FiwiError(
      `Process "${id}" on node "${node.name}" survived KILL for ${timeout} ms: it may be in uninterruptible sleep`,
    );
  }
  const code = rc !== undefined && rc !== "" ? Number(rc) : null;
  return {
    code,
    source: how === "quit" || how === "kill"
      ? how
      : code === null
      ? "lost"
      : "monitor",
  };
}

/**
 * The stages of `killAll`: the processes of each role in `order`, one stage
 * per role, then all the rest. Rejects an `order` that is not an array of
 * strings with {@linkcode ConfigurationError}.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { killStages } from "./_kill.ts";
 * const procs = [
 *   { id: "a", role: "db" },
 *   { id: "b", role: "app" },
 *   { id: "c", role: null },
 * ];
 * const stages = killStages(procs, ["app", "db"]);
 * assertEquals(stages.map((s) => s.map((p) => p.id)), [["b"], ["a"], ["c"]]);
 * ```
 */
export function killStages<T extends Pick<ProcessInfo, "role">>(
  pending: readonly T[],
  order: readonly string[] | undefined | null,
): T[][] {
  const roles = order ?? [];
  if (!Array.isArray(roles) || roles.some((r) => typeof r !== "string")) {
    throw new ConfigurationError(
      `Invalid order ${JSON.stringify(roles)}: give an array of role names`,
    );
  }
  return [
    ...roles.map((role) => pending.filter((p) => p.role === role)),
    pending.filter((p) => !roles.includes(p.role ?? "\0")),
  ];
}

/**
 * Stop `pending` with `kill`, stage by stage ({@linkcode killStages}), the
 * processes of one stage in parallel; then remove the default log files of
 * those stopped. Resolves with each id's status; rejects after all stages if
 * any kill failed.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { ProcessManager, SshNode } from "../../mod.ts";
 * import { killInOrder } from "./_kill.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * await using pm = new ProcessManager();
 * const id = await pm.start(node, "sleep 30", { role: "server" });
 * const stopped = await killInOrder(pm.list(), ["server"], (id) => pm.kill(id));
 * assertEquals(stopped.get(id), { code: 131, source: "quit" });
 * ```
 */
export async function killInOrder(
  pending: readonly ProcessInfo[],
  order: readonly string[] | undefined | null,
  kill: (id: string) => Promise<ExitStatus>,
): Promise<Map<string, ExitStatus>> {
  const stages = killStages(pending, order);
  const results = new Map<string, ExitStatus>();
  const errors: unknown[] = [];
  for (const stage of stages) {
    const settled = await Promise.allSettled(stage.map((p) => kill(p.id)));
    settled.forEach((s, i) => {
      if (s.status === "fulfilled") results.set(stage[i].id, s.value);
      else errors.push(s.reason);
    });
  }
  await removeLogs(pending.filter((p) => results.has(p.id)));
  if (errors.length > 0) {
    throw new FiwiError(
      `Could not stop ${errors.length} process(es): ${
        errors.map((e) => (e as Error).message).join("; ")
      }`,
      { cause: new AggregateError(errors) },
    );
  }
  return results;
}

/**
 * Remove the default log files of `stopped` on their nodes, one run per
 * node. The processes did stop: a node that cannot be reached now only
 * keeps its files, with a warning.
 */
async function removeLogs(stopped: readonly ProcessInfo[]): Promise<void> {
  const byNode = new Map<SshNode, string[]>();
  for (const p of stopped) {
    byNode.set(p.node, [...(byNode.get(p.node) ?? []), p.id]);
  }
  await Promise.all(
    [...byNode].map(async ([node, ids]) => {
      const r = await node.rexec(cleanupScript(ids), { cmdTimeout: 30_000 });
      if (!r.success) {
        log.warn("Could not remove the logs of {ids} on {node}: {why}", {
          ids,
          node: node.name,
          why: failure("remove logs", node, r).message,
        });
      }
    }),
  );
}
