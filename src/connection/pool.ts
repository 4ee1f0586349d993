/**
 * Pool: the warm ssh ControlMasters of every node fiwi talks to.
 *
 * OpenSSH keeps the pool itself: the first client to a node becomes its
 * master (`ControlMaster=auto`), later clients multiplex over the master's
 * socket, and `ControlPersist` closes a master after it has been idle for the
 * expiry (5 min by default, `DEFAULT_CONTROL_PERSIST_S` in node.ts). ssh also
 * steps over a socket whose master is gone (it unlinks a socket that refuses
 * connections and becomes the new master).
 *
 * What ssh cannot repair is a master that still holds its socket but no
 * longer answers (stopped, wedged): every client then hangs until its
 * connect timeout. {@linkcode ControlPool.repair} (from admission while a
 * client waits, and from `rexec` after a run that never started) asks the
 * master (`ssh -O check`, within a generous {@linkcode DEFAULT_CHECK_TIMEOUT})
 * and acts only on a positive finding:
 *
 * - the check answered with an error (no master listens on the socket):
 *   the socket is stale and removed;
 * - the check got no answer and the master's process is gone: stale too;
 * - the check got no answer and the master's process was stopped (state
 *   `T`) both when the check began and when its bound ran out: the master
 *   is hung, killed by its pid and its socket removed.
 *
 * A replaced master never keeps running: a hung one is killed by its pid,
 * and for a stale socket every process still titled as a master of it
 * (`ssh: <socket> [mux]`: one that stopped listening, or that ssh stepped
 * over when it found the socket refusing) is ended, TERM then KILL, and
 * waited for. Without its socket nothing could reach it to stop it.
 *
 * A check that merely runs out of time while the master's process runs (a
 * loaded controller, a master busy with other sessions) proves nothing:
 * the master is "slow" and left alone; the waiting run keeps waiting,
 * bounded by its own connect timeout. Killing it would cut every other run
 * that uses it. {@linkcode ControlPool.closeAll} ends every master fiwi
 * opened, for a clean shutdown.
 *
 * @example
 * ```ts ignore
 * import { controlPool, SshNode } from "../../mod.ts";
 * const node = new SshNode({ name: "n1", host: "10.0.0.5" });
 * await node.rexec("true");   // opens the master
 * await node.rexec("uname");  // reuses it
 * await controlPool.closeAll();
 * ```
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import { dirname } from "jsr:@std/path@^1";
import { ConnectionError } from "../errors.ts";
import type { RunResult } from "../process/run_options.ts";
import { runHelper } from "../process/spawn.ts";
import { endReplaced, lookAt, socketRequest } from "./_master_procs.ts";
import { entriesOf, guessControlPath } from "./_control_path.ts";
import {
  configArgv,
  controlArgv,
  type TransportSpec,
} from "../transport/argv.ts";

/** What `ssh -O check` says about a node's master. */
export type MasterState =
  /** No socket: the next client becomes the master. */
  | "absent"
  /** The master answers. */
  | "alive"
  /** A socket (or another file) nobody answers on: the master is gone. */
  | "stale"
  /**
   * The check got no answer within its bound, but nothing shows the master
   * is broken (its process runs, or cannot be looked at): left alone.
   */
  | "slow"
  /** No answer, and the master's process stayed stopped for the whole check. */
  | "hung";

/** The state of one node's master. */
export interface MasterStatus {
  /** See {@linkcode MasterState}. */
  state: MasterState;
  /** Pid of the master, when it answered. */
  pid: number | null;
  /** Path of the control socket, as ssh resolves `%C`. */
  socket: string;
}

/** Options of {@linkcode ControlPool}. */
export interface ControlPoolOptions {
  /** ms a master has to answer `ssh -O check` (default {@linkcode DEFAULT_CHECK_TIMEOUT}). */
  checkTimeout?: number;
}

/**
 * ms a master has to answer `ssh -O check`: generous, since running out of
 * it is only a reason to look at the master's process, never a verdict.
 * Short enough that a master found stopped after a wait of a third of the
 * default connect timeout (2 s) is replaced within that timeout (15 s).
 */
export const DEFAULT_CHECK_TIMEOUT = 4000;

const log = getLogger(["fiwi", "pool"]);

/** `ssh -G` lookups at once when guessed socket paths do not do. */
const RESOLVE_CONCURRENCY = 32;

/** Call `job` on every item, at most `limit` at a time. */
async function mapLimit<T>(
  items: readonly T[],
  limit: number,
  job: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await job(items[next++]);
  };
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, worker),
  );
}

/** What the pool needs of a node. `SshNode` satisfies it. */
export interface PoolNode {
  /** Node name, for logs. */
  readonly name: string;
  /** Uses a ControlMaster. */
  readonly controlMaster: boolean;
  /** The resolved transport settings. */
  readonly spec: TransportSpec;
}

/**
 * The ControlMasters fiwi has used. One process-wide instance,
 * {@linkcode controlPool}, serves every node; nodes register with it when
 * they first prepare a run.
 */
export class ControlPool {
  /** ms a master has to answer a check. */
  readonly checkTimeout: number;
  #specs = new Map<string, TransportSpec>();
  #sockets = new Map<string, string>();
  /** Master pids by socket, as the masters last said in a check. */
  #pids = new Map<string, number>();
  /** Repairs under way by socket: runs waiting on one master share one. */
  #repairs = new Map<string, Promise<MasterStatus | null>>();

  /**
   * Create a pool of ControlMaster sockets to track.
   *
   * @param options check timeout
   */
  constructor(options: ControlPoolOptions = {}) {
    this.checkTimeout = options.checkTimeout ?? DEFAULT_CHECK_TIMEOUT;
  }

  /** Number of distinct masters the pool knows of. */
  get size(): number {
    return this.#specs.size;
  }

  /** Remember a node's master so {@linkcode ControlPool.closeAll} ends it. */
  track(spec: TransportSpec): void {
    const argv = controlArgv(spec, "exit");
    if (argv) this.#specs.set(argv.join("\0"), { ...spec });
  }

  /** The control socket path of `node` (ssh's own `%C`), or null without one. */
  socketPath(node: PoolNode): Promise<string | null> {
    return this.#socketOf(node.spec);
  }

  /**
   * End the master of `spec` (`ssh -O exit`) and resolve once its socket is
   * gone: ssh answers the request before the master has removed it. True
   * when a master was running.
   */
  async exit(spec: TransportSpec): Promise<boolean> {
    const argv = controlArgv(spec, "exit");
    if (!argv) return false;
    const socket = await this.#socketOf(spec);
    const out = await runHelper(argv, 10_000);
    if (out.code !== 0) {
      log.debug("No ControlMaster to close at {socket}: {stderr}", {
        socket,
        stderr: out.stderr.trim(),
      });
      return false;
    }
    if (socket && !(await removed(socket, 2000))) {
      log.warn("ControlMaster socket {socket} still there 2 s after exit", {
        socket,
      });
    }
    return true;
  }

  /**
   * Ask the master of `spec` to stop (`ssh -O stop`): it takes no new
   * clients and removes its socket at once (the next run starts a master of
   * its own) and exits when the sessions it carries have ended, so runs in
   * flight through it finish undisturbed. True when a master was running.
   */
  async stop(spec: TransportSpec): Promise<boolean> {
    const argv = controlArgv(spec, "stop");
    if (!argv) return false;
    const out = await runHelper(argv, 10_000);
    if (out.code !== 0) {
      log.debug("No ControlMaster to stop: {stderr}", {
        stderr: out.stderr.trim(),
      });
      return false;
    }
    return true;
  }

  async #socketOf(spec: TransportSpec): Promise<string | null> {
    const argv = configArgv(spec);
    if (!argv) return null;
    const key = argv.join("\0");
    const known = this.#sockets.get(key);
    if (known) return known;
    // A socket under the guessed path is the master's: no `ssh -G` (a
    // process per node and run: 256 of them took 5.2 s of CPU on the
    // loopback rig, half of a warm `fiwi run`'s).
    const guess = await guessControlPath(spec);
    if (guess && await exists(guess)) {
      this.#sockets.set(key, guess);
      return guess;
    }
    const out = await runHelper(argv, 10_000);
    const path = /^controlpath (.+)$/m.exec(out.stdout)?.[1]?.trim();
    if (!path || path === "none") return null;
    this.#sockets.set(key, path);
    return path;
  }

  /**
   * The control socket of each of `nodes` that has one in its control
   * directory right now (null for the others), in order, spawning as
   * little as possible: a socket path this pool learned from ssh, or a
   * guess (src/connection/_control_path.ts) that names a file in the
   * directory, is taken as is. Only when files are left in a directory that
   * no node claimed is ssh asked (`ssh -G`) about that directory's nodes
   * without a match: a config that rewrites host, port or user. A node
   * without a socket file costs nothing else.
   */
  async liveSockets(nodes: readonly PoolNode[]): Promise<(string | null)[]> {
    const specs = nodes.map((n) => n.controlMaster ? n.spec : null);
    const dirs = new Map<string, Set<string>>();
    for (const spec of specs) {
      if (spec && !dirs.has(spec.controlDir)) {
        dirs.set(spec.controlDir, await entriesOf(spec.controlDir));
      }
    }
    const found: (string | null)[] = await Promise.all(
      specs.map(async (spec) => {
        if (!spec) return null;
        const known = this.#knownSocket(spec) ?? await guessControlPath(spec);
        return known && dirs.get(spec.controlDir)!.has(known) ? known : null;
      }),
    );
    const claimed = new Set(found);
    const unclaimed = new Set<string>();
    for (const [dir, entries] of dirs) {
      if ([...entries].some((e) => !claimed.has(e))) unclaimed.add(dir);
    }
    const unsure = specs.flatMap((spec, i) =>
      spec && found[i] === null && unclaimed.has(spec.controlDir) ? [i] : []
    );
    await mapLimit(unsure, RESOLVE_CONCURRENCY, async (i) => {
      const spec = specs[i]!;
      const path = await this.#socketOf(spec).catch(() => null);
      if (path && dirs.get(spec.controlDir)!.has(path)) found[i] = path;
    });
    return found;
  }

  /**
   * Ask the master on `socket` to stop (`ssh -O stop`): it takes no new
   * clients, removes its socket at once, and exits when the sessions it
   * carries have ended. True when a master took it: it answered, or its
   * answer was late but its socket is gone (a master removes it as it
   * takes the request; on a loaded machine the answer can take seconds).
   */
  async stopSocket(socket: string): Promise<boolean> {
    const out = await socketRequest(socket, "stop");
    const took = out.code === 0 || out.timedOut && !(await exists(socket));
    if (took) this.#pids.delete(socket);
    return took;
  }

  /** Pid of the master answering on `socket` (`ssh -O check`), or null. */
  async socketPid(socket: string): Promise<number | null> {
    const out = await socketRequest(socket, "check");
    return out.code === 0
      ? Number(/pid=(\d+)/.exec(out.stderr)?.[1]) || null
      : null;
  }

  #knownSocket(spec: TransportSpec): string | null {
    const argv = configArgv(spec);
    return argv ? this.#sockets.get(argv.join("\0")) ?? null : null;
  }

  /**
   * Ask the master of `node` whether it is there and answering; see the
   * module doc for what a check without an answer is taken to mean.
   */
  async check(node: PoolNode): Promise<MasterStatus | null> {
    const argv = controlArgv(node.spec, "check");
    const socket = await this.socketPath(node);
    if (!argv || !socket) return null;
    const known = this.#pids.get(socket) ?? null;
    const before = known === null ? null : await lookAt(socket, known);
    const out = await runHelper(argv, this.checkTimeout);
    if (out.code === 0) {
      const pid = Number(/pid=(\d+)/.exec(out.stderr)?.[1]) || null;
      if (pid) this.#pids.set(socket, pid);
      return { state: "alive", pid, socket };
    }
    if (!(await exists(socket))) return { state: "absent", pid: null, socket };
    // An answer that says no: nobody listens on the socket.
    if (!out.timedOut) return { state: "stale", pid: null, socket };
    const now = await lookAt(socket, known);
    const pid = now.pid;
    if (now.state === "gone") return { state: "stale", pid: null, socket };
    if (pid !== null) this.#pids.set(socket, pid); // for the next check
    // Stopped when the check began (a pid not known then is looked up now:
    // it was stopped for the whole bound only if it is still the same).
    const stoppedBefore = before
      ? before.state === "stopped" && before.pid === pid
      : false;
    if (now.state === "stopped" && stoppedBefore) {
      return { state: "hung", pid, socket };
    }
    return { state: "slow", pid, socket };
  }

  /**
   * Put the master of `node` back in order: a stale socket is removed; a
   * hung master (see {@linkcode ControlPool.check}) is killed and its socket
   * removed; a slow one is left alone. Resolves with the state found. Calls
   * for one master while a repair of it is under way share that repair.
   */
  async repair(node: PoolNode): Promise<MasterStatus | null> {
    const socket = await this.socketPath(node);
    if (!socket) return null;
    let repair = this.#repairs.get(socket);
    if (!repair) {
      repair = this.#repair(node).finally(() => this.#repairs.delete(socket));
      this.#repairs.set(socket, repair);
    }
    return await repair;
  }

  async #repair(node: PoolNode): Promise<MasterStatus | null> {
    const status = await this.check(node);
    if (status?.state === "slow") {
      log.info(
        "The ControlMaster of {node} did not answer a check within {ms} ms but is running: left alone",
        { node: node.name, ms: this.checkTimeout, pid: status.pid },
      );
    }
    if (!status || status.state !== "stale" && status.state !== "hung") {
      return status;
    }
    this.#pids.delete(status.socket);
    await endReplaced(status.socket, status.pid, status.state === "hung");
    await Deno.remove(status.socket).catch(() => {});
    log.warn("Replaced the {state} ControlMaster socket {socket} of {node}", {
      node: node.name,
      state: status.state,
      socket: status.socket,
      pid: status.pid,
    });
    return status;
  }

  /**
   * After a failed run: when the command never started on a node with a
   * master and the failure is one a broken master causes (a connect timeout
   * or a connection error), repair the master. True when a master was found
   * hung and replaced, so the run is worth another attempt even though it
   * timed out.
   */
  async recover(node: PoolNode, result: RunResult): Promise<boolean> {
    if (result.started || result.aborted || !node.controlMaster) return false;
    const suspicious = result.timedOut === "connect" ||
      result.error instanceof ConnectionError;
    if (!suspicious) return false;
    const status = await this.repair(node);
    return status?.state === "hung";
  }

  /**
   * End every master the pool knows of (`ssh -O exit`), in parallel.
   * Resolves with how many were running.
   */
  async closeAll(): Promise<number> {
    const specs = [...this.#specs.values()];
    this.#specs.clear();
    const closed = await Promise.all(specs.map((spec) => this.exit(spec)));
    return closed.filter((c) => c).length;
  }

  /** Same as {@linkcode ControlPool.closeAll}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.closeAll();
  }
}

/** True when something (a socket, a stale file) is at `path`. */
function exists(path: string): Promise<boolean> {
  return Deno.lstat(path).then(() => true, () => false);
}

/** Resolves true once nothing is at `path`, false if it is still there after `timeoutMs`. */
async function removed(path: string, timeoutMs: number): Promise<boolean> {
  const gone = async () => !(await exists(path));
  if (await gone()) return true;
  // Watch first, then look again, so a removal in between is not missed.
  const watcher = Deno.watchFs(dirname(path), { recursive: false });
  const timer = setTimeout(() => watcher.close(), timeoutMs);
  try {
    if (await gone()) return true;
    for await (const event of watcher) {
      if (event.kind === "remove" && await gone()) return true;
    }
    return await gone();
  } finally {
    clearTimeout(timer);
    try {
      watcher.close();
    } catch { /* closed by the timer */ }
  }
}

/** The process-wide pool every node registers with. */
export const controlPool: ControlPool = new ControlPool();
