/**
 * CommandManager: many scheduled {@linkcode Command}s by id, added and
 * stopped while the program runs. Commands that end leave the active list
 * by themselves; those that ended abnormally (a run that threw or timed out)
 * are kept in a history with the reason.
 *
 * @example
 * ```ts
 * import { CommandManager, SshNode } from "../../mod.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * await using mgr = new CommandManager();
 * const id = await mgr.addCommand({ node, cmd: "uptime", interval: 1000 });
 * console.log(mgr.listActive()); // [{ id, node: "here", cmd: "uptime", … }]
 * await mgr.stopCommand(id);
 * ```
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import {
  Command,
  type CommandNode,
  type CommandOptions,
  type CommandState,
} from "./command.ts";
import { ConfigurationError, TimeoutError } from "../errors.ts";

/** What {@linkcode CommandManager.addCommand} takes: node, command, options. */
export interface AddCommandOptions extends CommandOptions {
  /** Where to run. */
  node: CommandNode;
  /** The shell command. */
  cmd: string;
}

/** One entry of {@linkcode CommandManager.listActive}. */
export interface ActiveCommand {
  /** The id {@linkcode CommandManager.addCommand} returned. */
  id: string;
  /** Node name. */
  node: string;
  /** The shell command. */
  cmd: string;
  /** Its state ("running" until it ends). */
  state: CommandState;
  /** Runs so far. */
  runCount: number;
}

/** One entry of {@linkcode CommandManager.listAbnormalHistory}. */
export interface AbnormalStop {
  /** The command's id. */
  id: string;
  /** Node name. */
  node: string;
  /** The shell command. */
  cmd: string;
  /** "timeout": a run timed out; "exception": a run could not run or threw. */
  reason: "exception" | "timeout";
  /** The error message. */
  detail: string;
  /** When the command ended. */
  at: Date;
}

/**
 * How many abnormal stops the history keeps (the oldest go first).
 *
 * @example
 * ```ts
 * import { MAX_ABNORMAL_HISTORY } from "../../mod.ts";
 * console.log(MAX_ABNORMAL_HISTORY); // entries listAbnormalHistory() keeps
 * ```
 */
export const MAX_ABNORMAL_HISTORY = 1000;

const log = getLogger(["fiwi", "manager"]);

// Module-wide, so ids stay unique across managers in one program.
let lastId = 0;

/**
 * Runs {@linkcode Command}s by id. Dispose it (`await using`) or call
 * {@linkcode CommandManager.stopAll} to stop everything it started.
 *
 * @example
 * ```ts
 * import { CommandManager, SshNode } from "../../mod.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * const mgr = new CommandManager();
 * const id = await mgr.addCommand({ node, cmd: "true", interval: 1000 });
 * console.log(mgr.listActive().map((c) => c.id === id)); // [true]
 * await mgr.stopAll();
 * ```
 */
export class CommandManager {
  #active = new Map<string, Command>();
  #ended = new Set<string>();
  #history: AbnormalStop[] = [];

  /**
   * Create a command, start it, and resolve with its id once it is
   * scheduled. Rejects with {@linkcode ConfigurationError} for bad options
   * (nothing is then added).
   */
  async addCommand(options: AddCommandOptions): Promise<string> {
    const { node, cmd, ...rest } = options ?? ({} as AddCommandOptions);
    const command = new Command(node, cmd, rest);
    const id = `cmd-${++lastId}`;
    this.#active.set(id, command);
    command.done.then(() => {
      this.#active.delete(id);
      // Failing with no run means start() failed and the id was never
      // handed out: leave no trace of it.
      if (command.runCount > 0 || command.state !== "failed") {
        this.#retire(id, command);
      }
    });
    await command.start();
    log.debug("Added {id}: {cmd} on {node}", { id, cmd, node: node.name });
    return id;
  }

  #retire(id: string, command: Command): void {
    this.#ended.add(id);
    if (command.state !== "failed") return;
    const error = command.error;
    this.#history.push({
      id,
      node: command.node.name,
      cmd: command.cmd,
      reason: error instanceof TimeoutError ? "timeout" : "exception",
      detail: error?.message ?? "unknown error",
      at: new Date(),
    });
    if (this.#history.length > MAX_ABNORMAL_HISTORY) this.#history.shift();
  }

  /** The command behind `id`, while it is active. */
  getCommand(id: string): Command | undefined {
    return this.#active.get(id);
  }

  /**
   * Stop one command (its run in progress is killed) and resolve once it is
   * torn down. An id that already ended is a no-op; an id this manager never
   * gave out is a {@linkcode ConfigurationError}.
   */
  async stopCommand(id: string): Promise<void> {
    const command = this.#active.get(id);
    if (command) return await command.stop();
    if (this.#ended.has(id)) return;
    throw new ConfigurationError(
      `Unknown command id ${
        JSON.stringify(id)
      }: use an id returned by addCommand()`,
    );
  }

  /** Stop every active command and resolve once all are torn down. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.#active.values()].map((c) => c.stop()));
  }

  /** Commands still scheduled or running; ended ones drop out by themselves. */
  listActive(): ActiveCommand[] {
    return [...this.#active].map(([id, c]) => ({
      id,
      node: c.node.name,
      cmd: c.cmd,
      state: c.state,
      runCount: c.runCount,
    }));
  }

  /** Commands that ended because a run threw or timed out, oldest first. */
  listAbnormalHistory(): AbnormalStop[] {
    return this.#history.map((entry) => ({ ...entry }));
  }

  /** Same as {@linkcode CommandManager.stopAll}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stopAll();
  }
}
