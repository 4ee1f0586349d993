/**
 * Console streams: a node's `consoleCommand` (`dmesg -w` by default) run in
 * the background in a session of its own, its lines sent to the logger
 * (category `fiwi.console`) and to a callback. The lifeline ends the remote
 * command when the stream is closed or the program dies.
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import type { Line } from "../process/lines.ts";
import type { RunOptions, RunResult } from "../process/run_options.ts";
import { type RunTarget, SshSession } from "../process/session.ts";
import { shellQuote } from "../transport/quote.ts";

const log = getLogger(["fiwi", "node"]);
const consoleLog = getLogger(["fiwi", "console"]);

/** Options of `SshNode.openConsoles`. */
export interface OpenConsolesOptions {
  /** Override every console node's `silent` flag for its console lines. */
  silent?: boolean;
  /** Called for every console line of every node. */
  onLine?: (line: Line) => void;
  /** Only these nodes (default: every live node with `console: true`). */
  nodes?: ConsoleNode[];
  /** Run `SshNode.clean` first (default true). */
  clean?: boolean;
}

/** What a console needs of a node. `SshNode` satisfies it. */
export interface ConsoleNode extends RunTarget {
  /** The console stream command. */
  readonly consoleCommand: string;
  /** Open the console in the background. */
  openConsole(options?: Omit<OpenConsolesOptions, "nodes">): Promise<void>;
  /** Run a command, as `SshNode.rexec`. */
  rexec(cmd: string, options?: RunOptions): Promise<RunResult>;
}

/** One open console stream. */
export class ConsoleStream {
  /** Settles when the stream ends, on its own or by {@linkcode ConsoleStream.close}. */
  readonly done: Promise<RunResult>;
  #session: SshSession;

  /**
   * Start `node.consoleCommand` now.
   *
   * @param node where it runs
   * @param options `silent` and `onLine`
   */
  constructor(
    node: ConsoleNode,
    options: Omit<OpenConsolesOptions, "nodes"> = {},
  ) {
    const silent = options.silent ?? node.silent;
    this.#session = new SshSession(node);
    this.done = this.#session.postCmd(node.consoleCommand, {
      onLine: (line) => {
        if (!silent) {
          consoleLog.info("[{node}] {text}", {
            node: line.node,
            text: line.text,
          });
        }
        options.onLine?.(line);
      },
    });
    this.done.then(
      (r) => {
        if (!r.aborted) {
          log.warn("Console of {node} ended: exit {code}", {
            node: node.name,
            code: r.code,
          });
        }
      },
      () => {},
    );
  }

  /** Stop the stream and wait for its teardown; its result, or null. */
  async close(): Promise<RunResult | null> {
    await this.#session.close();
    return await this.done.catch(() => null);
  }
}

/** Kill stale copies of `node`'s console command (left by an older fiwi). */
export async function cleanConsoles(node: ConsoleNode): Promise<void> {
  const result = await node.rexec(
    `pkill -x -f ${shellQuote(node.consoleCommand)}; true`,
    { cmdTimeout: 15_000 },
  );
  if (!result.success) {
    log.warn("Cleaning node {node} failed: {error}", {
      node: node.name,
      error: result.error?.message ?? result.stderr.trim(),
    });
  }
}
