/**
 * Console streams: a command run in the background in a session of its own
 * (a node's `consoleCommand`, `dmesg -w` by default, or a serial port's
 * reader on its `via` node), its lines labelled with the node they belong
 * to and sent to the logger and to a callback. The lifeline ends the remote
 * command when the stream is closed or the program dies.
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import type { Line } from "../process/lines.ts";
import type { RunOptions, RunResult } from "../process/run_options.ts";
import { type SessionNode, SshSession } from "../process/session.ts";
import { shellQuote } from "../transport/quote.ts";

const log = getLogger(["fiwi", "node"]);

/** Options of a {@linkcode ConsoleStream}. */
export interface ConsoleStreamOptions {
  /** Called for every line, its `node` set to the stream's {@linkcode ConsoleStream.node}. */
  onLine?: (line: Line) => void;
  /** true: lines are not sent to the logger (default: the running node's `silent`). */
  silent?: boolean;
  /**
   * The node name lines carry (default: the running node's name), e.g. the
   * node whose serial port another node reads.
   */
  node?: string;
  /** Logger category of the lines (default `["fiwi", "console"]`). */
  category?: readonly string[];
}

/** Options of `SshNode.openConsoles`. */
export interface OpenConsolesOptions
  extends Pick<ConsoleStreamOptions, "onLine" | "silent"> {
  /** Only these nodes (default: every live node with `console: true`). */
  nodes?: ConsoleNode[];
  /** Run `SshNode.clean` first (default true). */
  clean?: boolean;
}

/** What a console needs of a node. `SshNode` satisfies it. */
export interface ConsoleNode extends SessionNode {
  /** The console stream command. */
  readonly consoleCommand: string;
  /** Open the console in the background; the open stream. */
  openConsole(
    options?: Omit<OpenConsolesOptions, "nodes">,
  ): Promise<ConsoleStream>;
  /** Run a command, as `SshNode.rexec`. */
  rexec(cmd: string, options?: RunOptions): Promise<RunResult>;
}

/**
 * One console stream: `command` runs on a node in the background until
 * {@linkcode ConsoleStream.close}; each line goes to the logger (unless
 * silent) and to `onLine`, labelled with {@linkcode ConsoleStream.node}.
 *
 * @example
 * ```ts
 * import { ConsoleStream, SshNode } from "../../mod.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * await using stream = new ConsoleStream(node, "echo booted", {
 *   silent: true,
 *   onLine: (line) => console.log(`[${line.node}] ${line.text}`),
 * });
 * console.log((await stream.done).success); // true
 * ```
 */
export class ConsoleStream {
  /** The node name every line carries. */
  readonly node: string;
  /** Settles when the stream ends, on its own or by {@linkcode ConsoleStream.close}. */
  readonly done: Promise<RunResult>;
  #session: SshSession;

  /**
   * Start `command` on `runner` now.
   *
   * @param runner the node the command runs on
   * @param command the stream command, for the node's shell
   * @param options `onLine`, `silent`, the lines' `node` and logger `category`
   */
  constructor(
    runner: SessionNode,
    command: string,
    options: ConsoleStreamOptions = {},
  ) {
    const node = options.node ?? runner.name;
    const silent = options.silent ?? runner.silent;
    const lineLog = getLogger(options.category ?? ["fiwi", "console"]);
    this.node = node;
    this.#session = new SshSession(runner);
    this.done = this.#session.postCmd(command, {
      onLine: (line) => {
        const own = line.node === node ? line : { ...line, node };
        if (!silent) {
          lineLog.info("[{node}] {text}", { node, text: own.text });
        }
        options.onLine?.(own);
      },
    });
  }

  /** Stop the stream and wait for its teardown; its result, or null. */
  async close(): Promise<RunResult | null> {
    await this.#session.close();
    return await this.done.catch(() => null);
  }

  /** Same as {@linkcode ConsoleStream.close}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Start `node.consoleCommand` as a {@linkcode ConsoleStream}; a stream that
 * ends before it is closed is logged as a warning (category `fiwi.node`).
 */
export function startConsole(
  node: ConsoleNode,
  options: Pick<ConsoleStreamOptions, "onLine" | "silent"> = {},
): ConsoleStream {
  const stream = new ConsoleStream(node, node.consoleCommand, {
    onLine: options.onLine,
    silent: options.silent,
  });
  stream.done.then(
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
  return stream;
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
