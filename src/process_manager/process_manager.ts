/**
 * Remote processes: start long-running programs on nodes, detached from the
 * ssh connection, and see them through to their end.
 *
 * {@linkcode ProcessManager.start} starts the command in its own session on
 * the node, under a small monitor shell that records its exit status, with
 * output appended to a log file there. Its pid, host, user, role and start
 * time are written to a metadata file on the node in the same round trip
 * (under `${XDG_RUNTIME_DIR:-/tmp}/fiwi-proc-<uid>/`), so another controller
 * can adopt it later with {@linkcode ProcessManager.attach}. One watcher per
 * node (a single ssh session) reports exits as they happen to
 * {@linkcode ProcessManager.onExit}. {@linkcode ProcessManager.kill} sends
 * QUIT to the process group, then KILL, and removes the metadata.
 *
 * Closing the manager stops its watchers only: the processes keep running.
 * These are the only processes fiwi detaches on purpose: every other
 * command dies with the run that started it (the lifeline,
 * src/transport/wrapper.ts). A process started here is in a session of its
 * own, outside the group the lifeline kills, and so is anything a user
 * starts with their own `setsid`; `nohup` alone does not escape it.
 *
 * @example
 * ```ts ignore
 * import { ProcessManager, SshNode } from "../../mod.ts";
 * const node = new SshNode({ name: "n1", host: "10.0.0.5" });
 * await using pm = new ProcessManager();
 * pm.onExit((e) => console.log(`${e.id} ended: ${e.code} (${e.source})`));
 * const id = await pm.start(node, "iperf3 -s", { name: "iperf", role: "server" });
 * console.log(await pm.isAlive(id), pm.remotePid(id));
 * console.log(await pm.readLog(id, 20));
 * await pm.killAll({ order: ["client", "server"] });
 * ```
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import { ConfigurationError, FiwiError } from "../errors.ts";
import type { SshNode } from "../node/node.ts";
import { validateTimeout } from "../process/run_options.ts";
import { validateCommand } from "../transport/validate.ts";
import {
  checkStart,
  type ExitStatus,
  type KillAllOptions,
  type KillOptions,
  parseList,
  parseMeta,
  parseState,
  type ProcessExit,
  type ProcessInfo,
  type ProcessManagerOptions,
  type StartOptions,
} from "./_process_meta.ts";
import {
  listScript,
  startScript,
  stateScript,
  tailScript,
} from "./_process_scripts.ts";
import { killInOrder, killOnNode } from "./_kill.ts";
import { runScript } from "./_run_script.ts";
import { NodeWatchers } from "./_watcher.ts";

export type {
  ExitSource,
  ExitStatus,
  KillAllOptions,
  KillOptions,
  ProcessExit,
  ProcessInfo,
  ProcessManagerOptions,
  StartOptions,
} from "./_process_meta.ts";

/**
 * Default of {@linkcode KillOptions.timeout}.
 *
 * @example
 * ```ts
 * import { DEFAULT_KILL_TIMEOUT } from "../../mod.ts";
 * console.log(DEFAULT_KILL_TIMEOUT); // ms between QUIT and KILL
 * ```
 */
export const DEFAULT_KILL_TIMEOUT = 5000;

const log = getLogger(["fiwi", "process"]);

interface Entry {
  info: ProcessInfo;
  killing: Promise<ExitStatus> | null;
  cleaned: boolean;
}

function hex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/**
 * Starts, watches, re-adopts and stops long-running processes on nodes.
 * Dispose it (`await using`) to stop its watchers; the processes go on.
 *
 * @example
 * ```ts
 * import { ProcessManager, SshNode } from "../../mod.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * const pm = new ProcessManager();
 * const id = await pm.start(node, "sleep 30", { name: "sleeper" });
 * console.log(await pm.isAlive(id)); // true
 * await pm.killAll(); // kills it, then removes its log
 * ```
 */
export class ProcessManager {
  #procs = new Map<string, Entry>();
  #listeners = new Set<(exit: ProcessExit) => void>();
  // Exits a watcher reported before start() had registered the id.
  #early = new Map<string, ExitStatus>();
  // Null when the options turned watching off.
  #watchers: NodeWatchers | null;
  #closed = false;

  /**
   * Create a manager; it watches the nodes of the processes it starts.
   *
   * @param options watcher settings
   */
  constructor(options: ProcessManagerOptions = {}) {
    validateTimeout("watchInterval", options.watchInterval);
    this.#watchers = (options.watch ?? true)
      ? new NodeWatchers({
        running: (node) => this.#running(node),
        onExit: (id, status) => this.#reported(id, status),
      }, options.watchInterval || 250)
      : null;
  }

  /**
   * Start `cmd` detached on `node` and resolve with its id once it runs and
   * its metadata is recorded there. Rejects with
   * {@linkcode ConfigurationError} for bad input and {@linkcode FiwiError}
   * when the node cannot start it.
   */
  async start(
    node: SshNode,
    cmd: string,
    options: StartOptions = {},
  ): Promise<string> {
    this.#open();
    validateCommand(cmd);
    const { name, role, env } = checkStart(options);
    const id = `${name}-${hex(4)}`;
    const script = startScript({
      id,
      cmd,
      logFile: options.logFile,
      env,
      spec: JSON.stringify({ name, role, cmd }),
    });
    const meta = await runScript(node, `start ${JSON.stringify(cmd)}`, script);
    const entry = this.#add(parseMeta(id, node, meta));
    log.info("Started {id} on {node}: pid {pid}, {cmd}", {
      id,
      node: node.name,
      pid: entry.info.pid,
      role,
      cmd,
    });
    const early = this.#early.get(id);
    if (early) {
      this.#early.delete(id);
      this.#exited(entry, early);
    }
    this.#watchers?.watch(node);
    return id;
  }

  /**
   * Adopt every process recorded on `node` (by any controller) that this
   * manager does not know yet. Those found ended are reported to
   * {@linkcode ProcessManager.onExit}. Resolves with the ids of all
   * processes recorded on the node.
   */
  async attach(node: SshNode): Promise<string[]> {
    this.#open();
    const listed = parseList(
      node,
      await runScript(node, "list processes", listScript()),
    );
    for (const { info, exit } of listed) {
      if (this.#procs.has(info.id)) continue;
      const entry = this.#add(info);
      log.info("Attached {id} on {node}: pid {pid}", {
        id: info.id,
        node: node.name,
        pid: info.pid,
      });
      if (exit) this.#exited(entry, exit);
    }
    this.#watchers?.watch(node);
    return listed.map((p) => p.info.id);
  }

  /** Every process this manager knows, ended ones included until killed. */
  list(): ProcessInfo[] {
    return this.#pending().map((info) => ({ ...info }));
  }

  /** What is known of process `id`. */
  info(id: string): ProcessInfo {
    return { ...this.#entry(id).info };
  }

  /** Pid of the command on its node, or null for an unknown id. */
  remotePid(id: string): number | null {
    return this.#procs.get(id)?.info.pid ?? null;
  }

  /** Ask the node whether process `id` still runs. */
  async isAlive(id: string): Promise<boolean> {
    const entry = this.#entry(id);
    if (entry.info.exit) return false;
    const state = await runScript(
      entry.info.node,
      "check a process",
      stateScript(id),
    );
    const exit = parseState(state);
    if (!exit) return true;
    if (!entry.killing) this.#exited(entry, exit);
    return false;
  }

  /** The last `lines` lines of the process's log file on its node. */
  async readLog(id: string, lines = 100): Promise<string> {
    const { node, logFile } = this.#entry(id).info;
    if (!Number.isInteger(lines) || lines < 1) {
      throw new ConfigurationError(
        `Invalid lines ${JSON.stringify(lines)}: give a whole number >= 1`,
      );
    }
    return await runScript(node, "read a log", tailScript(logFile, lines));
  }

  /**
   * Call `callback` for every process that ends, with its exit code and how
   * it was learned. Returns a function that removes the callback.
   */
  onExit(callback: (exit: ProcessExit) => void): () => void {
    this.#listeners.add(callback);
    return () => this.#listeners.delete(callback);
  }

  /**
   * Stop process `id`: QUIT to its process group, up to `timeout` ms for it
   * to go, then KILL and as long again; then remove its metadata. Resolves
   * with the exit status and its source (`monitor` when it had already
   * ended). Calling it again resolves with the same status.
   */
  kill(id: string, options: KillOptions = {}): Promise<ExitStatus> {
    let entry: Entry;
    const timeout = options.timeout ?? DEFAULT_KILL_TIMEOUT;
    try {
      entry = this.#entry(id);
      validateTimeout("timeout", timeout);
    } catch (e) {
      return Promise.reject(e);
    }
    entry.killing ??= this.#stop(entry, timeout).catch((e) => {
      entry.killing = null;
      throw e;
    });
    return entry.killing;
  }

  /**
   * Stop every process: the roles in `order` one after the other (the
   * processes of one role in parallel), then all the rest in parallel.
   * Then, per node, the log files fiwi chose for the processes stopped
   * (`<id>.log`; a `logFile` given to `start` stays) are removed, and the
   * metadata directory too once empty: nothing of them is left on the node.
   * Resolves with each id's status; rejects after all stages if any kill
   * failed.
   */
  async killAll(
    options: KillAllOptions = {},
  ): Promise<Map<string, ExitStatus>> {
    return await killInOrder(
      this.#pending(),
      options.order,
      (id) => this.kill(id, { timeout: options.timeout }),
    );
  }

  /** Stop the watchers (the processes keep running). */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#watchers?.close();
  }

  /** Same as {@linkcode ProcessManager.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Kill on the node, then forget the process and report its exit. */
  async #stop(entry: Entry, timeout: number): Promise<ExitStatus> {
    const { node, id } = entry.info;
    const reported = await killOnNode(node, id, timeout);
    // An exit learned before (by the watcher, isAlive) is the true one.
    const status = entry.info.exit ?? reported;
    entry.cleaned = true;
    this.#exited(entry, status);
    log.info("Stopped {id} on {node}: exit {code} ({source})", {
      id,
      node: node.name,
      code: status.code,
      source: status.source,
    });
    return status;
  }

  #open(): void {
    if (this.#closed) {
      throw new FiwiError("This process manager is closed: create a new one");
    }
  }

  #add(info: ProcessInfo): Entry {
    const entry: Entry = { info, killing: null, cleaned: false };
    this.#procs.set(info.id, entry);
    return entry;
  }

  #entry(id: string): Entry {
    const entry = this.#procs.get(id);
    if (!entry) {
      throw new ConfigurationError(
        `Unknown process id ${
          JSON.stringify(id)
        }: use an id from start() or attach()`,
      );
    }
    return entry;
  }

  /** The processes not killed yet (the live objects, not copies). */
  #pending(): ProcessInfo[] {
    return [...this.#procs.values()].filter((e) => !e.cleaned).map((e) =>
      e.info
    );
  }

  #running(node: SshNode): boolean {
    for (const e of this.#procs.values()) {
      if (e.info.node === node && !e.info.exit && !e.cleaned) return true;
    }
    return false;
  }

  /** A watcher saw process `id` end. */
  #reported(id: string, status: ExitStatus): void {
    const entry = this.#procs.get(id);
    if (!entry) {
      // Possibly one of ours whose start() has not returned yet; the watcher
      // reports each id once, so keep it (a bounded number of them).
      if (this.#early.size >= 1000) this.#early.clear();
      this.#early.set(id, status);
      return;
    }
    if (entry.killing || entry.info.exit) return;
    this.#exited(entry, status);
  }

  #exited(entry: Entry, status: ExitStatus): void {
    if (!entry.info.exit) {
      entry.info.exit = status;
      this.#notify({
        id: entry.info.id,
        node: entry.info.node.name,
        name: entry.info.name,
        role: entry.info.role,
        ...status,
      });
    }
    this.#watchers?.stopIfIdle(entry.info.node);
  }

  #notify(event: ProcessExit): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (e) {
        log.error("An onExit callback threw for {id}: {error}", {
          id: event.id,
          error: e,
        });
      }
    }
  }
}
