/**
 * Up-front checks of {@linkcode CommandOptions}: every bad value is a
 * {@linkcode ConfigurationError} naming it, before anything is scheduled.
 *
 * @module
 */

import type { Clock } from "../process/clock.ts";
import type { Line } from "../process/lines.ts";
import { ConfigurationError } from "../errors.ts";
import { type RunResult, validateTimeout } from "../process/run_options.ts";

/** One run of a `Command`. */
export interface RunRecord {
  /** 0-based run number. */
  index: number;
  /** When the run was due, in ms on the schedule's clock (`performance.now()`). */
  scheduledAt: number;
  /** When it was started, on the same clock. */
  startedAt: number;
  /** Its outcome. */
  result: RunResult;
}

function checkNumber(name: string, value: unknown, min?: number): void {
  if (value === undefined) return;
  if (
    typeof value !== "number" || !Number.isFinite(value) ||
    (min !== undefined && value < min)
  ) {
    throw new ConfigurationError(
      `Invalid ${name} ${JSON.stringify(value)}: give milliseconds as a number${
        min !== undefined ? ` >= ${min}` : ""
      }`,
    );
  }
}

function checkChoice(name: string, value: unknown, choices: string[]): void {
  if (value !== undefined && !choices.includes(value as string)) {
    throw new ConfigurationError(
      `Invalid ${name} ${JSON.stringify(value)}: use ${
        choices.map((c) => `"${c}"`).join(" or ")
      }`,
    );
  }
}

/** Options of `Command`. Times are milliseconds. */
export interface CommandOptions {
  /** Period between scheduled fires; undefined or <= 0: one run. */
  interval?: number;
  /**
   * Runs before the command finishes: a whole number >= 1, or
   * `Command.COUNT_FOREVER` (the default with an interval). Without
   * an interval there is exactly one run.
   */
  count?: number;
  /** Wait before the first fire (default 0). */
  initialDelay?: number;
  /** Each fire is delayed by a random amount in [0, jitter) (default 0). */
  jitter?: number;
  /**
   * A run that ends after the next fire was due: "skip" (default) waits for
   * the next grid point; "immediate" fires the next run at once.
   */
  overrun?: "skip" | "immediate";
  /**
   * A run that times out or fails to run (connection or input error):
   * "stop" (default) ends the command as "failed"; "continue" goes on. A
   * non-zero exit code is not an error.
   */
  onError?: "stop" | "continue";
  /** Called for every output line of every run. */
  onLine?: (line: Line) => void;
  /**
   * Called once per finished run (a run that timed out, failed or was
   * stopped included) with its {@linkcode RunRecord}, once `Command.runs`
   * holds it and before the next run is scheduled. It is not awaited. What
   * it throws (or the promise it returns rejects with) is logged under
   * `["fiwi", "command"]` and neither stops the schedule nor fails the
   * command.
   *
   * @example
   * ```ts
   * import { Command, SshNode } from "../../mod.ts";
   * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
   * const uptime = new Command(node, "cat /proc/uptime", {
   *   interval: 50,
   *   count: 2,
   *   onRun: ({ index, result }) => console.log(index, result.stdout.trim()),
   * });
   * await uptime.start();
   * await uptime.done;
   * ```
   */
  onRun?: (run: RunRecord) => void;
  /** Append every run to this file under a banner; closed when the command ends. */
  logFile?: string;
  /** Connect timeout of every run (default: the node's). */
  connectTimeout?: number;
  /** Io timeout of every run (default: the node's). */
  ioTimeout?: number;
  /** Command timeout of every run (default: the node's). */
  cmdTimeout?: number;
  /** The schedule's clock (default `performance.now()`); tests pass a manual one. */
  clock?: Clock;
  /** Source of jitter in [0, 1) (default `Math.random`). */
  random?: () => number;
}

/** Throw {@linkcode ConfigurationError} for the first bad option. */
export function validateCommandOptions(o: CommandOptions): void {
  checkNumber("interval", o.interval);
  checkNumber("initialDelay", o.initialDelay, 0);
  checkNumber("jitter", o.jitter, 0);
  checkChoice("overrun", o.overrun, ["skip", "immediate"]);
  checkChoice("onError", o.onError, ["stop", "continue"]);
  for (const key of ["connectTimeout", "ioTimeout", "cmdTimeout"] as const) {
    validateTimeout(key, o[key]);
  }
  // -1 is Command.COUNT_FOREVER (not imported: command.ts imports this file).
  if (
    o.count !== undefined &&
    !(Number.isInteger(o.count) && (o.count >= 1 || o.count === -1))
  ) {
    throw new ConfigurationError(
      `Invalid count ${
        JSON.stringify(o.count)
      }: give a whole number >= 1 or Command.COUNT_FOREVER (-1)`,
    );
  }
  for (const key of ["onLine", "onRun", "random"] as const) {
    if (o[key] !== undefined && typeof o[key] !== "function") {
      throw new ConfigurationError(`Invalid ${key}: give a function`);
    }
  }
  if (
    o.clock !== undefined &&
    (typeof o.clock?.now !== "function" || typeof o.clock?.sleep !== "function")
  ) {
    throw new ConfigurationError(
      "Invalid clock: give an object with now() and sleep()",
    );
  }
  if (
    o.logFile !== undefined &&
    (typeof o.logFile !== "string" || o.logFile === "")
  ) {
    throw new ConfigurationError(
      `Invalid logFile ${JSON.stringify(o.logFile)}: give a file path`,
    );
  }
}
