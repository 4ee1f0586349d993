/**
 * Ending ControlMasters on a caller's behalf, through the process-wide pool
 * (which stays internal): `fiwi close` stopping the masters of a node set,
 * and the power switch ending the master of a node it just cut off.
 *
 * @module
 */

import { controlPool, type PoolNode } from "./pool.ts";

/** What {@linkcode closeMaster} did with one node's master. */
export interface ClosedMaster {
  /** Node name. */
  node: string;
  /**
   * closed: a live master was asked to stop; none: no master answered;
   * skipped: the node uses no ControlMaster.
   */
  state: "closed" | "none" | "skipped";
  /** Path of the control socket, when the node has one. */
  socket: string | null;
  /** Pid of the master that was stopped. */
  pid: number | null;
}

/** What {@linkcode closeMaster} needs of a node. `SshNode` satisfies it. */
export interface MasterNode extends PoolNode {
  /** Throw a `ConfigurationError` for invalid settings. */
  validate(): void;
}

/**
 * Stop the warm ControlMaster of `node`, if one answers (`ssh -O stop`):
 * it takes no new sessions, and the ones in flight finish first. Nodes that
 * share one master: the first call stops it, the others find none. Throws
 * a `ConfigurationError` for a node with invalid settings.
 *
 * @example
 * ```ts
 * import { closeMaster, SshNode } from "../../mod.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * console.log((await closeMaster(node)).state); // "skipped": no master
 * ```
 */
export async function closeMaster(node: MasterNode): Promise<ClosedMaster> {
  const base = { node: node.name, socket: null, pid: null };
  if (!node.controlMaster) return { ...base, state: "skipped" };
  node.validate();
  const status = await controlPool.check(node);
  if (status?.state !== "alive") {
    return { ...base, socket: status?.socket ?? null, state: "none" };
  }
  const stopped = await controlPool.stop(node.spec);
  return {
    node: node.name,
    socket: status.socket,
    state: stopped ? "closed" : "none",
    pid: status.pid,
  };
}

/**
 * End the master of `node` (`ssh -O exit`), unless `keep` goes through the
 * same one (same user, host and port resolve to one socket). For a node
 * whose network just went away: its master may not know yet, and a run
 * would hang on it. Never throws: no master is nothing to end.
 */
export async function endMasterUnlessShared(
  node: PoolNode,
  keep: PoolNode,
): Promise<void> {
  if (!node.controlMaster) return;
  try {
    const [own, kept] = await Promise.all([
      controlPool.socketPath(node),
      controlPool.socketPath(keep),
    ]);
    if (own !== null && own !== kept) await controlPool.exit(node.spec);
  } catch { /* no master to end */ }
}

/**
 * End every ControlMaster this program has used (`ssh -O exit`), in
 * parallel, at shutdown. Resolves with how many were running.
 *
 * @example
 * ```ts
 * import { closeAllMasters } from "../../mod.ts";
 * console.log(await closeAllMasters()); // 0: no ssh node ran here
 * ```
 */
export function closeAllMasters(): Promise<number> {
  return controlPool.closeAll();
}
