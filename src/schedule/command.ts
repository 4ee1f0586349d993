/**
 * Command: a command run on one node on a schedule, once, N times, or until
 * stopped.
 *
 * Fires are deadline-based on one monotonic clock, the grid of
 * {@linkcode scheduleTicks}: fire k is due at `t0 + initialDelay + k·interval`
 * (plus its jitter), and the wait before it is whatever remains until then,
 * so the time a run takes never pushes later fires back. Runs never overlap:
 * a run that outlasts its period either gives up the grid points it missed
 * (`overrun: "skip"`) or fires the next run at once (`"immediate"`), never a
 * burst of catch-up runs.
 *
 * @example
 * ```ts
 * import { Command, SshNode } from "../../mod.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * const cmd = new Command(node, "date +%s", { interval: 100, count: 3 });
 * await cmd.start();
 * await cmd.done;
 * console.log(cmd.state, cmd.runs.map((r) => r.result.stdout.trim()));
 * ```
 *
 * @module
 */

import { getLogger } from "npm:@logtape/logtape@^2";
import { type Clock, monotonicClock } from "../process/clock.ts";
import { RunLog } from "./_run_log.ts";
import { describeOutcome } from "../process/outcome.ts";
import { scheduleTicks } from "./ticks.ts";
import { ConfigurationError, FiwiError } from "../errors.ts";
import type { Line } from "../process/lines.ts";
import type { SshNode } from "../node/node.ts";
import { type RunResult, unstartedResult } from "../process/run_options.ts";
import { validateCommand } from "../transport/validate.ts";
import {
  type CommandOptions,
  type RunRecord,
  validateCommandOptions,
} from "./_command_options.ts";

export type { Clock } from "../process/clock.ts";
export type { CommandOptions, RunRecord } from "./_command_options.ts";

/** Where a {@linkcode Command} is in its life. */
export type CommandState =
  | "idle"
  | "running"
  | "finished"
  | "stopped"
  | "failed";

/** What a {@linkcode Command} needs of a node: its name and `rexec`. */
export type CommandNode = Pick<SshNode, "name" | "rexec">;

/**
 * How many {@linkcode RunRecord}s a command keeps: the last 100.
 *
 * @example
 * ```ts
 * import { MAX_RUN_RECORDS } from "../../mod.ts";
 * console.log(MAX_RUN_RECORDS); // Command.runs keeps the last 100
 * ```
 */
export const MAX_RUN_RECORDS = 100;

const log = getLogger(["fiwi", "command"]);

/** A result for a run whose `rexec` threw instead of resolving. */
function thrownResult(node: string, cmd: string, e: unknown): RunResult {
  const error = e instanceof FiwiError ? e : new FiwiError(
    `Running ${JSON.stringify(cmd)} on node "${node}" threw: ${
      (e as Error)?.message ?? String(e)
    }`,
    { cause: e },
  );
  return unstartedResult({ node, cmd, argv: [], aborted: false, error });
}

/**
 * A command run on one node on a schedule. See the module documentation for
 * the schedule; {@linkcode Command.start} begins it, {@linkcode Command.stop}
 * ends it (stopping a run in progress, remote process included), and
 * {@linkcode Command.done} resolves once it has ended either way.
 *
 * @example
 * ```ts
 * import { Command, SshNode } from "../../mod.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * const cmd = new Command(node, "date +%s", { interval: 50, count: 2 });
 * await cmd.start();
 * await cmd.done;
 * console.log(cmd.runCount, cmd.state); // 2 "finished"
 * ```
 */
export class Command {
  /** `count` for a command that runs until stopped. */
  static readonly COUNT_FOREVER: -1 = -1;

  /** Where the command runs. */
  readonly node: CommandNode;
  /** The shell command. */
  readonly cmd: string;
  /** Period in ms, or 0 for a single run. */
  readonly interval: number;
  /** Runs before finishing, or {@linkcode Command.COUNT_FOREVER}. */
  readonly count: number;
  #options: CommandOptions;
  #clock: Clock;
  #state: CommandState = "idle";
  #runs: RunRecord[] = [];
  #runCount = 0;
  #error: FiwiError | null = null;
  #stopper = new AbortController();
  #loop: Promise<void> | null = null;
  #done: Promise<void>;
  #settle!: () => void;

  /**
   * Create a command; nothing runs until {@linkcode Command.start}.
   *
   * @param node where to run
   * @param cmd the shell command
   * @param options schedule, error policy, output and per-run timeouts
   * @throws {ConfigurationError} for a bad command or option
   */
  constructor(node: CommandNode, cmd: string, options: CommandOptions = {}) {
    if (
      typeof node !== "object" || node === null ||
      typeof node.rexec !== "function"
    ) {
      throw new ConfigurationError(
        `Invalid node ${JSON.stringify(node)}: give an SshNode`,
      );
    }
    validateCommand(cmd);
    const o = options ?? {};
    validateCommandOptions(o);
    this.node = node;
    this.cmd = cmd;
    this.interval = o.interval !== undefined && o.interval > 0 ? o.interval : 0;
    this.count = this.interval > 0 ? o.count ?? Command.COUNT_FOREVER : 1;
    this.#options = { ...o };
    this.#clock = o.clock ?? monotonicClock;
    this.#done = new Promise((resolve) => this.#settle = resolve);
  }

  /** Where the command is in its life. */
  get state(): CommandState {
    return this.#state;
  }

  /** Runs so far (a run stopped by {@linkcode Command.stop} counts). */
  get runCount(): number {
    return this.#runCount;
  }

  /** The last {@linkcode MAX_RUN_RECORDS} runs, oldest first. */
  get runs(): RunRecord[] {
    return [...this.#runs];
  }

  /** Why the command failed (state "failed"), else null. */
  get error(): FiwiError | null {
    return this.#error;
  }

  /** Resolves (never rejects) once the command has finished, failed or been stopped. */
  get done(): Promise<void> {
    return this.#done;
  }

  /**
   * Begin the schedule; resolves once it is running (the first run may still
   * be waiting for its time). Rejects if the command was already started or
   * its log file cannot be opened.
   */
  async start(): Promise<void> {
    if (this.#state !== "idle") {
      throw new FiwiError(
        `Command ${
          JSON.stringify(this.cmd)
        } on node "${this.node.name}" was already started: create a new Command`,
      );
    }
    this.#state = "running";
    let runLog: RunLog | null = null;
    if (this.#options.logFile !== undefined) {
      try {
        runLog = await RunLog.open(this.#options.logFile);
      } catch (e) {
        this.#end("failed", e as FiwiError);
        throw e;
      }
    }
    const t0 = this.#clock.now();
    log.debug("Started {cmd} on {node}", {
      node: this.node.name,
      cmd: this.cmd,
      interval: this.interval,
      count: this.count,
    });
    this.#loop = this.#schedule(t0, runLog);
  }

  /**
   * Stop the schedule and any run in progress (killed the way an abort
   * kills it), and resolve once everything is torn down and the log file is
   * closed. Harmless when called again or after the command ended.
   */
  async stop(): Promise<void> {
    if (this.#state === "idle") this.#end("stopped", null);
    this.#stopper.abort();
    await this.#loop;
    await this.#done;
  }

  /** Same as {@linkcode Command.stop}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  #end(state: CommandState, error: FiwiError | null): void {
    this.#state = state;
    this.#error = error;
    this.#settle();
  }

  async #schedule(t0: number, runLog: RunLog | null): Promise<void> {
    let ending: { state: CommandState; error: FiwiError | null } = {
      state: "finished",
      error: null,
    };
    try {
      ending = await this.#fire(t0, runLog);
    } catch (e) {
      // Only a bug gets here; the command must still end in a known state.
      ending = {
        state: "failed",
        error: e instanceof FiwiError
          ? e
          : new FiwiError(`Command ${JSON.stringify(this.cmd)} broke: ${e}`, {
            cause: e,
          }),
      };
    } finally {
      await runLog?.close();
    }
    if (this.#stopper.signal.aborted) {
      ending = { state: "stopped", error: null };
    }
    log.debug("Command {cmd} on {node} ended: {state}", {
      node: this.node.name,
      cmd: this.cmd,
      state: ending.state,
      runs: this.#runCount,
    });
    this.#end(ending.state, ending.error);
  }

  async #fire(
    t0: number,
    runLog: RunLog | null,
  ): Promise<{ state: CommandState; error: FiwiError | null }> {
    const o = this.#options;
    const stopped = this.#stopper.signal;
    const ticks = scheduleTicks({
      interval: this.interval,
      count: this.count === Command.COUNT_FOREVER ? undefined : this.count,
      initialDelay: o.initialDelay,
      jitter: o.jitter,
      random: o.random,
      overrun: o.overrun,
      clock: this.#clock,
      start: t0,
      signal: stopped,
    });
    for await (const tick of ticks) {
      const record = await this.#runOnce(tick.due, runLog);
      const result = record.result;
      if (stopped.aborted) break;
      if (result.timedOut || result.error) {
        log.warn("Run {index} of {cmd} on {node} failed: {outcome}", {
          node: this.node.name,
          cmd: this.cmd,
          index: record.index,
          outcome: describeOutcome(result).sentence,
        });
        if ((o.onError ?? "stop") === "stop") {
          return { state: "failed", error: result.error };
        }
      }
    }
    return stopped.aborted
      ? { state: "stopped", error: null }
      : { state: "finished", error: null };
  }

  async #runOnce(
    scheduledAt: number,
    runLog: RunLog | null,
  ): Promise<RunRecord> {
    const o = this.#options;
    const index = this.#runCount;
    const startedAt = this.#clock.now();
    runLog?.begin(this.node.name, this.cmd, index, new Date());
    const onLine = runLog || o.onLine
      ? (line: Line) => {
        runLog?.line(line);
        o.onLine?.(line);
      }
      : undefined;
    let result: RunResult;
    try {
      result = await this.node.rexec(this.cmd, {
        signal: this.#stopper.signal,
        onLine,
        connectTimeout: o.connectTimeout,
        ioTimeout: o.ioTimeout,
        cmdTimeout: o.cmdTimeout,
      });
    } catch (e) {
      result = thrownResult(this.node.name, this.cmd, e);
    }
    runLog?.end(index, result);
    const record: RunRecord = { index, scheduledAt, startedAt, result };
    this.#runCount++;
    this.#runs.push(record);
    if (this.#runs.length > MAX_RUN_RECORDS) this.#runs.shift();
    this.#notify(record);
    return record;
  }

  /** Hand `record` to `onRun`; what it throws or rejects with is logged, never raised. */
  #notify(record: RunRecord): void {
    const onRun = this.#options.onRun;
    if (!onRun) return;
    const threw = (error: unknown) =>
      log.error(
        "onRun callback threw for run {index} of {cmd} on {node}: {error}",
        { node: this.node.name, cmd: this.cmd, index: record.index, error },
      );
    try {
      // Typed void, but an async callback returns a promise: keep its
      // rejection from going unhandled.
      const returned: unknown = onRun(record);
      if (returned instanceof Promise) returned.catch(threw);
    } catch (e) {
      threw(e);
    }
  }
}
