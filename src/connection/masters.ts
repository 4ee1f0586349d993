/**
 * Ending ControlMasters on a caller's behalf, through the process-wide pool
 * (which stays internal): `fiwi close` stopping the masters of a node set,
 * the power switch ending the master of a node it just cut off, and the
 * cap on how many stay live (src/connection/_master_cap.ts).
 *
 * @module
 */

import { controlPool, type PoolNode } from "./pool.ts";
import { idleMasters, killAndWait, mastersBySocket } from "./_master_procs.ts";
import { guessControlPath } from "./_control_path.ts";
import { masterCap } from "./_master_cap.ts";

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

/** Options of {@linkcode closeMasters}. */
export interface CloseMastersOptions {
  /** Masters asked to stop at once (default {@linkcode CLOSE_CONCURRENCY}). */
  concurrency?: number;
}

/**
 * Masters with sessions in flight that {@linkcode closeMasters} asks to
 * stop at once, each with one short-lived `ssh -O stop`: this bounds how
 * many such processes start together.
 */
export const CLOSE_CONCURRENCY = 64;

/**
 * Stop the warm ControlMasters of `nodes`, in parallel: each takes no new
 * sessions, and the ones in flight finish first. A node with no socket
 * file is answered without starting anything (see
 * `ControlPool.liveSockets`); nodes that share one master: the first stops
 * it, the others find none. A master that carries nothing (on Linux, seen
 * in /proc) is ended by one TERM for all of them; one with sessions gets
 * `ssh -O stop`. (A session that attaches between that look and the TERM,
 * a few ms, is cut: its run fails as a lost connection.) A master that lost its socket to a
 * replacement (titled for the same socket, but not the one answering on
 * it) cannot be reached to stop it: it is ended with TERM, and so is an
 * idle master titled for a node's socket path whose file is gone (looked
 * for only when some socket is live: the `ps` runs then anyway). Throws a
 * `ConfigurationError` for a node with invalid settings, before anything
 * is closed. Results are in node order.
 *
 * @example
 * ```ts
 * import { closeMasters, SshNode } from "../../mod.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * console.log((await closeMasters([node]))[0].state); // "skipped": no master
 * ```
 */
export async function closeMasters(
  nodes: readonly MasterNode[],
  options: CloseMastersOptions = {},
): Promise<ClosedMaster[]> {
  const concurrency = options.concurrency ?? CLOSE_CONCURRENCY;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(
      `Invalid concurrency ${
        JSON.stringify(concurrency)
      }: give a whole number >= 1`,
    );
  }
  for (const node of nodes) if (node.controlMaster) node.validate();
  const results: ClosedMaster[] = nodes.map((node) => ({
    node: node.name,
    state: node.controlMaster ? "none" : "skipped",
    socket: null,
    pid: null,
  }));
  const sockets = await controlPool.liveSockets(nodes);
  const owner = new Map<string, number>();
  sockets.forEach((socket, i) => {
    if (socket === null) return;
    results[i].socket = socket;
    if (!owner.has(socket)) owner.set(socket, i);
  });
  if (owner.size === 0) return results;
  const lost = await lostSockets(nodes, sockets);
  const titled = await mastersBySocket([...owner.keys(), ...lost.keys()]);
  const left = await endIdle(owner, titled, results, lost);
  const jobs = [...owner].filter(([socket]) => left.has(socket));
  let next = 0;
  const replaced: number[] = [];
  const worker = async () => {
    while (next < jobs.length) {
      const [socket, i] = jobs[next++];
      let pids = titled.get(socket) ?? [];
      // More than one master titled for the socket: ask which one answers.
      const pid = pids.length > 1
        ? await controlPool.socketPid(socket)
        : pids[0] ?? null;
      if (!(await controlPool.stopSocket(socket))) continue;
      results[i] = { ...results[i], state: "closed", pid };
      if (pid !== null) pids = pids.filter((p) => p !== pid);
      else pids = [];
      replaced.push(...pids);
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(concurrency, jobs.length) }, worker),
  );
  if (replaced.length) await killAndWait(replaced, "TERM", 2000);
  return results;
}

/**
 * The control paths, by the first node that has each, of the nodes with a
 * ControlMaster but no socket file: a master titled for one of them lost
 * its socket (replaced, or its file removed) and no `ssh -O` can reach it
 * any more. Guessed paths only (see `guessControlPath`): no spawn.
 */
async function lostSockets(
  nodes: readonly MasterNode[],
  sockets: readonly (string | null)[],
): Promise<Map<string, number>> {
  const paths = await Promise.all(
    nodes.map((node, i) =>
      node.controlMaster && sockets[i] === null
        ? guessControlPath(node.spec)
        : null
    ),
  );
  const lost = new Map<string, number>();
  paths.forEach((path, i) => {
    if (path !== null && !lost.has(path)) lost.set(path, i);
  });
  return lost;
}

/**
 * End at once, with one TERM for all, the masters that carry nothing (see
 * `idleMasters`): for them TERM is what `ssh -O stop` does, without an ssh
 * started per master (about 20 ms of CPU each here, most of closing 1,000).
 * Idle masters titled for a `lost` socket go with them (a busy one is left
 * to finish its sessions: nothing can ask it to stop). Marks them closed
 * in `results`; resolves with the sockets left for `ssh -O stop` (busy
 * masters, several titled for one socket, or one that outlived the TERM).
 */
async function endIdle(
  owner: Map<string, number>,
  titled: Map<string, number[]>,
  results: ClosedMaster[],
  lost: Map<string, number>,
): Promise<Set<string>> {
  const left = new Set(owner.keys());
  const single = [...owner.keys()].filter((s) => titled.get(s)?.length === 1);
  const orphans = [...lost.keys()].flatMap((path) =>
    (titled.get(path) ?? []).map((pid) => [path, pid] as const)
  );
  const idle = await idleMasters([
    ...single.map((s) => titled.get(s)![0]),
    ...orphans.map(([, pid]) => pid),
  ]);
  const quick = single.filter((s) => idle.has(titled.get(s)![0]));
  // A master that came up since the directory was read has its socket now.
  const still = await Promise.all(
    orphans.map(([path]) => Deno.lstat(path).then(() => false, () => true)),
  );
  const idleOrphans = orphans.filter(([, pid], k) => still[k] && idle.has(pid));
  if (quick.length === 0 && idleOrphans.length === 0) return left;
  await killAndWait(
    [
      ...quick.map((s) => titled.get(s)![0]),
      ...idleOrphans.map(([, pid]) => pid),
    ],
    "TERM",
    2000,
  );
  for (const [path, pid] of idleOrphans) {
    const i = lost.get(path)!;
    results[i] = { ...results[i], state: "closed", pid };
  }
  // A master removes its socket as it exits.
  const gone = await Promise.all(
    quick.map((s) => Deno.lstat(s).then(() => false, () => true)),
  );
  quick.forEach((socket, k) => {
    if (!gone[k]) return;
    left.delete(socket);
    const i = owner.get(socket)!;
    results[i] = {
      ...results[i],
      state: "closed",
      pid: titled.get(socket)![0],
    };
  });
  return left;
}

/**
 * Stop the warm ControlMaster of `node`, if one answers (`ssh -O stop`):
 * {@linkcode closeMasters} for one node. Throws a `ConfigurationError` for
 * a node with invalid settings.
 *
 * @example
 * ```ts
 * import { closeMaster, SshNode } from "../../mod.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * console.log((await closeMaster(node)).state); // "skipped": no master
 * ```
 */
export async function closeMaster(node: MasterNode): Promise<ClosedMaster> {
  return (await closeMasters([node]))[0];
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
  masterCap.clear();
  return controlPool.closeAll();
}

export { DEFAULT_MAX_MASTERS } from "./_master_cap.ts";

/**
 * Cap the ControlMasters this process keeps live (default
 * {@linkcode DEFAULT_MAX_MASTERS}; rig file `maxMasters:`, `fiwi
 * --max-masters`): before a master beyond the cap is opened, the least
 * recently used one that no run of this process is using is stopped, or
 * the new one waits for a run to end. Throws `RangeError` unless `max` is
 * a whole number >= 1.
 *
 * @example
 * ```ts
 * import { maxMasters, setMaxMasters } from "../../mod.ts";
 * setMaxMasters(256);
 * console.log(maxMasters()); // 256
 * ```
 */
export function setMaxMasters(max: number): void {
  masterCap.max = max;
}

/** The cap on live ControlMasters of this process (see {@linkcode setMaxMasters}). */
export function maxMasters(): number {
  return masterCap.max;
}
