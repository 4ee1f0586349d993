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
 * connect timeout. {@linkcode ControlPool.recover} is called by `rexec`
 * after a run that never started; it asks the master (`ssh -O check`, with a
 * short timeout), and a master that does not answer is killed and its socket
 * removed, so the retry starts a fresh one. {@linkcode ControlPool.closeAll}
 * ends every master fiwi opened, for a clean shutdown.
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
  /** The socket accepts but the master does not answer in time. */
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
  /** ms a master has to answer `ssh -O check` (default 1000). */
  checkTimeout?: number;
}

const log = getLogger(["fiwi", "pool"]);

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

  /**
   * Create a pool of ControlMaster sockets to track.
   *
   * @param options check timeout
   */
  constructor(options: ControlPoolOptions = {}) {
    this.checkTimeout = options.checkTimeout ?? 1000;
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
    const out = await runHelper(argv, 10_000);
    const path = /^controlpath (.+)$/m.exec(out.stdout)?.[1]?.trim();
    if (!path || path === "none") return null;
    this.#sockets.set(key, path);
    return path;
  }

  /** Ask the master of `node` whether it is there and answering. */
  async check(node: PoolNode): Promise<MasterStatus | null> {
    const argv = controlArgv(node.spec, "check");
    const socket = await this.socketPath(node);
    if (!argv || !socket) return null;
    const out = await runHelper(argv, this.checkTimeout);
    if (out.code === 0) {
      const pid = Number(/pid=(\d+)/.exec(out.stderr)?.[1]) || null;
      if (pid) this.#pids.set(socket, pid);
      return { state: "alive", pid, socket };
    }
    if (!(await exists(socket))) return { state: "absent", pid: null, socket };
    // A check that got no answer at all was killed by its timeout.
    return {
      state: out.timedOut ? "hung" : "stale",
      pid: null,
      socket,
    };
  }

  /**
   * Put the master of `node` back in order: a stale socket is removed; a
   * master that does not answer is killed and its socket removed. Resolves
   * with the state found.
   */
  async repair(node: PoolNode): Promise<MasterStatus | null> {
    const status = await this.check(node);
    if (!status || status.state === "alive" || status.state === "absent") {
      return status;
    }
    const pid = this.#pids.get(status.socket);
    this.#pids.delete(status.socket);
    if (status.state === "hung" && pid) await killMaster(pid);
    await Deno.remove(status.socket).catch(() => {});
    log.warn("Replaced the {state} ControlMaster socket {socket} of {node}", {
      node: node.name,
      state: status.state,
      socket: status.socket,
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

/**
 * Kill a hung master by the pid it gave in an earlier check. Through `sh`:
 * a script may run ssh, sh and setsid only, and Deno.kill needs more. A
 * master whose pid fiwi never learned (started by another program) is left
 * alone; its socket is still removed, so no client uses it again.
 */
async function killMaster(pid: number): Promise<void> {
  const out = await runHelper(["sh", "-c", `kill -KILL ${pid}`], 2000);
  if (out.code !== 0) {
    log.warn("Cannot kill the hung ControlMaster {pid}: {stderr}", {
      pid,
      stderr: out.stderr.trim(),
    });
  }
}

/** The process-wide pool every node registers with. */
export const controlPool: ControlPool = new ControlPool();
