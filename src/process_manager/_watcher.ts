/**
 * The process watchers: one long-running ssh session per node that reports
 * each process ending there, restarted with backoff while the node cannot
 * be reached, stopped once the node has nothing left to watch.
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import type { SshNode } from "../node/node.ts";
import { SshSession } from "../process/session.ts";
import { resolveRetry, retryDelay } from "../process/backoff.ts";
import type { RunResult } from "../process/run_options.ts";
import { type ExitStatus, parseWatchLine } from "./_process_meta.ts";
import { watchScript } from "./_process_scripts.ts";

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

/** What the watchers need from the manager that owns them. */
export interface WatcherHost {
  /** Whether `node` still has a process that has not ended. */
  running(node: SshNode): boolean;
  /** A watcher saw process `id` end (reported once per id and watcher). */
  onExit(id: string, status: ExitStatus): void;
}

interface Watcher {
  session: SshSession;
  done: Promise<void>;
}

/**
 * The watchers of one manager, at most one per node.
 *
 * @example
 * ```ts
 * import { SshNode } from "../../mod.ts";
 * import { NodeWatchers } from "./_watcher.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * const watchers = new NodeWatchers({
 *   running: () => true,
 *   onExit: (id, status) => console.log(id, status),
 * }, 250);
 * watchers.watch(node);
 * await watchers.close();
 * ```
 */
export class NodeWatchers {
  #host: WatcherHost;
  #interval: number;
  #watchers = new Map<SshNode, Watcher>();
  #restarts = new Map<SshNode, ReturnType<typeof setTimeout>>();
  #failures = new Map<SshNode, number>();
  // Watchers being stopped because their node has nothing left to watch.
  #stopping = new Set<Promise<void>>();
  #closed = false;

  /**
   * Watchers that report to `host`, checking every `intervalMs` on the node.
   *
   * @param host what the watchers ask and tell
   * @param intervalMs ms between the node-side watcher's checks
   */
  constructor(host: WatcherHost, intervalMs: number) {
    this.#host = host;
    this.#interval = intervalMs;
  }

  /**
   * Start watching `node`, unless it is watched already, waits for a
   * restart, or has nothing running.
   */
  watch(node: SshNode): void {
    if (this.#closed || this.#watchers.has(node)) return;
    if (this.#restarts.has(node) || !this.#host.running(node)) return;
    const session = new SshSession(node);
    const done = session.postCmd(watchScript(this.#interval), {
      cmdTimeout: 0,
      ioTimeout: 0,
      onLine: (line) => {
        if (line.stream !== "stdout") return;
        const ended = parseWatchLine(line.text);
        if (ended) this.#host.onExit(ended.id, ended.status);
      },
    }).then(
      (r) => this.#ended(node, session, r.aborted ? null : r),
      (e) => this.#ended(node, session, e),
    );
    this.#watchers.set(node, { session, done });
  }

  /** Stop the watcher of `node` if the node has nothing running any more. */
  stopIfIdle(node: SshNode): void {
    const w = this.#watchers.get(node);
    if (!w || this.#host.running(node)) return;
    this.#watchers.delete(node);
    const stopping = w.session.close().then(() => w.done);
    this.#stopping.add(stopping);
    stopping.finally(() => this.#stopping.delete(stopping));
  }

  /** Stop every watcher and pending restart; resolves once all are gone. */
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

  /**
   * A watcher's session ended: `why` is null when it was stopped on
   * purpose, else its result or error. Restart it after a backoff while
   * its node still has something running.
   */
  #ended(node: SshNode, session: SshSession, why: unknown): void {
    if (this.#watchers.get(node)?.session !== session) return;
    this.#watchers.delete(node);
    if (this.#closed || why === null || !this.#host.running(node)) return;
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
        this.watch(node);
      }, wait),
    );
  }
}
