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
import { SshSession } from "../process/session.ts";
import { resolveRetry, retryDelay } from "../process/backoff.ts";
import { type RunResult, validateTimeout } from "../process/run_options.ts";
import { validateCommand } from "../transport/validate.ts";
import {
  checkStart,
  type ExitStatus,
  type KillAllOptions,
  type KillOptions,
  parseMeta,
  parseState,
  type ProcessExit,
  type ProcessInfo,
  type ProcessManagerOptions,
  type StartOptions,
} from "./_process_meta.ts";
import {
  cleanupScript,
  crashScript,
  killScript,
  listScript,
  startScript,
  stateScript,
  tailScript,
  watchScript,
} from "./_process_scripts.ts";

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
/**
 * Waits before restarting a process watcher that keeps failing: 1 s,
 * doubling to 30 s while the node is unreachable (the one backoff formula,
 * src/process/backoff.ts).
 */
const WATCH_RESTARTS = resolveRetry({
  attempts: 100,
  baseDelay: 1000,
  maxDelay: 30_000,
});

const log = getLogger(["fiwi", "process"]);

interface Entry {
  info: ProcessInfo;
  killing: Promise<ExitStatus> | null;
  cleaned: boolean;
}

interface Watcher {
  session: SshSession;
  done: Promise<void>;
}

function hex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

function failure(what: string, node: SshNode, r: RunResult): FiwiError {
  const why = r.error?.message ?? (r.stderr.trim() || `exit code ${r.code}`);
  return new FiwiError(`Cannot ${what} on node "${node.name}": ${why}`, {
    cause: r.error ?? undefined,
  });
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
 * await pm.kill(id);
 * ```
 */
export class ProcessManager {
  #procs = new Map<string, Entry>();
  #watchers = new Map<SshNode, Watcher>();
  #restarts = new Map<SshNode, ReturnType<typeof setTimeout>>();
  #failures = new Map<SshNode, number>();
  #listeners = new Set<(exit: ProcessExit) => void>();
  // Exits a watcher reported before start() had registered the id.
  #early = new Map<string, ExitStatus>();
  // Watchers being stopped because their node has nothing left to watch.
  #stopping = new Set<Promise<void>>();
  #closed = false;
  #watch: boolean;
  #interval: number;

  /**
   * Create a manager; it watches the nodes of the processes it starts.
   *
   * @param options watcher settings
   */
  constructor(options: ProcessManagerOptions = {}) {
    validateTimeout("watchInterval", options.watchInterval);
    this.#watch = options.watch ?? true;
    this.#interval = options.watchInterval || 250;
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
    const r = await node.rexec(
      startScript({
        id,
        cmd,
        logFile: options.logFile,
        env,
        spec: JSON.stringify({ name, role, cmd }),
      }),
      { cmdTimeout: 30_000 },
    );
    if (!r.success) throw failure(`start ${JSON.stringify(cmd)}`, node, r);
    const info = parseMeta(id, node, r.stdout);
    const entry: Entry = { info, killing: null, cleaned: false };
    this.#procs.set(id, entry);
    log.info("Started {id} on {node}: pid {pid}, {cmd}", {
      id,
      node: node.name,
      pid: info.pid,
      role,
      cmd,
    });
    const early = this.#early.get(id);
    if (early) {
      this.#early.delete(id);
      this.#exited(entry, early);
    }
    this.#ensureWatcher(node);
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
    const r = await node.rexec(listScript(), { cmdTimeout: 30_000 });
    if (!r.success) throw failure("list processes", node, r);
    const ids: string[] = [];
    for (const block of r.stdout.split(/^@@ /m).slice(1)) {
      const nl = block.indexOf("\n");
      const id = block.slice(0, nl);
      const body = block.slice(nl + 1);
      const state = /^state=(.*)$/m.exec(body)?.[1] ?? "lost";
      ids.push(id);
      if (this.#procs.has(id)) continue;
      const entry = {
        info: parseMeta(id, node, body),
        killing: null,
        cleaned: false,
      };
      this.#procs.set(id, entry);
      log.info("Attached {id} on {node}: pid {pid}", {
        id,
        node: node.name,
        pid: entry.info.pid,
      });
      const exit = parseState(state);
      if (exit) this.#exited(entry, exit);
    }
    this.#ensureWatcher(node);
    return ids;
  }

  /** Every process this manager knows, ended ones included until killed. */
  list(): ProcessInfo[] {
    return [...this.#procs.values()].filter((e) => !e.cleaned).map((e) => ({
      ...e.info,
    }));
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
    const r = await entry.info.node.rexec(stateScript(id), {
      cmdTimeout: 30_000,
    });
    if (!r.success) throw failure("check a process", entry.info.node, r);
    const exit = parseState(r.stdout);
    if (!exit) return true;
    if (!entry.killing) this.#exited(entry, exit);
    return false;
  }

  /** The last `lines` lines of the process's log file on its node. */
  async readLog(id: string, lines = 100): Promise<string> {
    const entry = this.#entry(id);
    if (!Number.isInteger(lines) || lines < 1) {
      throw new ConfigurationError(
        `Invalid lines ${JSON.stringify(lines)}: give a whole number >= 1`,
      );
    }
    const r = await entry.info.node.rexec(
      tailScript(entry.info.logFile, lines),
      { cmdTimeout: 30_000 },
    );
    if (!r.success) throw failure("read a log", entry.info.node, r);
    return r.stdout;
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
    entry.killing ??= this.#kill(entry, timeout).catch((e) => {
      entry.killing = null;
      throw e;
    });
    return entry.killing;
  }

  async #kill(entry: Entry, timeout: number): Promise<ExitStatus> {
    const { node, id } = entry.info;
    const r = await node.rexec(killScript(id, timeout), {
      cmdTimeout: 2 * timeout + 30_000,
    });
    if (!r.success) throw failure(`kill process "${id}"`, node, r);
    const [how, rc] = r.stdout.trim().split(" ");
    if (how === "stuck") {
      throw new FiwiError(
        `Process "${id}" on node "${node.name}" survived KILL for ${timeout} ms: it may be in uninterruptible sleep`,
      );
    }
    const code = rc !== undefined && rc !== "" ? Number(rc) : null;
    const status: ExitStatus = entry.info.exit ?? {
      code,
      source: how === "quit" || how === "kill"
        ? how
        : code === null
        ? "lost"
        : "monitor",
    };
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
    const order = options.order ?? [];
    if (!Array.isArray(order) || order.some((r) => typeof r !== "string")) {
      throw new ConfigurationError(
        `Invalid order ${JSON.stringify(order)}: give an array of role names`,
      );
    }
    const pending = [...this.#procs.values()].filter((e) => !e.cleaned);
    const stages = [
      ...order.map((role) => pending.filter((e) => e.info.role === role)),
      pending.filter((e) => !order.includes(e.info.role ?? "\0")),
    ];
    const results = new Map<string, ExitStatus>();
    const errors: unknown[] = [];
    for (const stage of stages) {
      const settled = await Promise.allSettled(
        stage.map((e) => this.kill(e.info.id, { timeout: options.timeout })),
      );
      settled.forEach((s, i) => {
        if (s.status === "fulfilled") results.set(stage[i].info.id, s.value);
        else errors.push(s.reason);
      });
    }
    await this.#removeLogs(pending.filter((e) => results.has(e.info.id)));
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
  async #removeLogs(stopped: readonly Entry[]): Promise<void> {
    const byNode = new Map<SshNode, string[]>();
    for (const e of stopped) {
      byNode.set(e.info.node, [...(byNode.get(e.info.node) ?? []), e.info.id]);
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

  /**
   * KILL the process group of `id` and nothing else: the metadata stays, so
   * the exit is learned the way an unexpected crash would be.
   */
  async crash(id: string): Promise<void> {
    const entry = this.#entry(id);
    const r = await entry.info.node.rexec(crashScript(id), {
      cmdTimeout: 30_000,
    });
    if (!r.success) throw failure(`crash process "${id}"`, entry.info.node, r);
  }

  /** Stop the watchers (the processes keep running). */
  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#restarts.values()) clearTimeout(t);
    this.#restarts.clear();
    const watchers = [...this.#watchers.values()];
    this.#watchers.clear();
    await Promise.all([
      ...watchers.map(async (w) => {
        await w.session.close();
        await w.done;
      }),
      ...this.#stopping,
    ]);
  }

  /** Same as {@linkcode ProcessManager.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #open(): void {
    if (this.#closed) {
      throw new FiwiError("This process manager is closed: create a new one");
    }
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

  #exited(entry: Entry, status: ExitStatus): void {
    if (!entry.info.exit) {
      entry.info.exit = status;
      const event: ProcessExit = {
        id: entry.info.id,
        node: entry.info.node.name,
        name: entry.info.name,
        role: entry.info.role,
        ...status,
      };
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
    this.#maybeStopWatcher(entry.info.node);
  }

  #running(node: SshNode): boolean {
    for (const e of this.#procs.values()) {
      if (e.info.node === node && !e.info.exit && !e.cleaned) return true;
    }
    return false;
  }

  #ensureWatcher(node: SshNode): void {
    if (!this.#watch || this.#closed || this.#watchers.has(node)) return;
    if (this.#restarts.has(node) || !this.#running(node)) return;
    const session = new SshSession(node);
    const done = session.postCmd(watchScript(this.#interval), {
      cmdTimeout: 0,
      ioTimeout: 0,
      onLine: (line) => {
        if (line.stream === "stdout") this.#onWatchLine(line.text);
      },
    }).then(
      (r) => this.#watcherEnded(node, session, r.aborted ? null : r),
      (e) => this.#watcherEnded(node, session, e),
    );
    this.#watchers.set(node, { session, done });
  }

  #onWatchLine(text: string): void {
    const [what, id, rc] = text.split(" ");
    const status: ExitStatus | null = what === "exit"
      ? { code: Number(rc), source: "monitor" }
      : what === "lost"
      ? { code: null, source: "lost" }
      : null;
    if (!status) return;
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

  #watcherEnded(node: SshNode, session: SshSession, why: unknown): void {
    if (this.#watchers.get(node)?.session !== session) return;
    this.#watchers.delete(node);
    if (this.#closed || why === null || !this.#running(node)) return;
    // A watcher that never got going counts as a failure; one that ran
    // (and lost its connection) starts the backoff over.
    const failures = (why as RunResult).started
      ? 0
      : (this.#failures.get(node) ?? 0) + 1;
    this.#failures.set(node, failures);
    const wait = retryDelay(WATCH_RESTARTS, Math.max(1, failures));
    log.warn(
      "The process watcher on {node} ended; restarting in {delayMs} ms: {why}",
      {
        node: node.name,
        delayMs: wait,
        why: (why as RunResult).error?.message ?? String(why),
      },
    );
    this.#restarts.set(
      node,
      setTimeout(() => {
        this.#restarts.delete(node);
        this.#ensureWatcher(node);
      }, wait),
    );
  }

  #maybeStopWatcher(node: SshNode): void {
    const w = this.#watchers.get(node);
    if (!w || this.#running(node)) return;
    this.#watchers.delete(node);
    const stopping = w.session.close().then(() => w.done);
    this.#stopping.add(stopping);
    stopping.finally(() => this.#stopping.delete(stopping));
  }
}
