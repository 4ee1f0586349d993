/**
 * The pure parts of a shell run: the script a run writes, the result it
 * resolves with, the pattern `expect` searches for.
 *
 * @module
 */

import { type FiwiError, TimeoutError } from "../errors.ts";
import type { TimeoutKind } from "../process/watchdog.ts";
import { shellQuote } from "../transport/quote.ts";
import type { RawRun } from "./_shell_output.ts";
import type { ShellResult } from "./_shell_types.ts";

/** A token for a shell's sentinels: no command's output contains it by chance. */
export function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * What a run writes to the shell: `cmd` evaluated in the shell itself
 * (`command eval`, so a syntax error does not end the shell) with stdin from
 * `/dev/null`, so it cannot read the commands after it; then its status on
 * stdout and the end of its stderr, each marked with `sentinel`.
 */
export function runScript(cmd: string, sentinel: string): string {
  return `{ command eval ${shellQuote(cmd)}\n} </dev/null\n` +
    `printf '%s %d\\n' ${sentinel} "$?"; printf '%s\\n' ${sentinel} >&2\n`;
}

/** How a run ended, besides its raw output. */
export interface RunEnd {
  /** The command as given. */
  cmd: string;
  /** Which limit stopped it, or "abort", or null when it ended by itself. */
  stopped: TimeoutKind | "abort" | null;
  /** The limit in ms of the timeout that fired. */
  limit?: number;
  /** Shell and node names, for the timeout's message. */
  shell: string;
  /** Node name. */
  node: string;
  /** Wall-clock duration in ms. */
  durationMs: number;
}

/**
 * The {@linkcode ShellResult} of a run: a timeout is a {@linkcode TimeoutError}
 * as in a `RunResult`; a stopped run has no exit status (what the shell died
 * of is not the command's).
 */
export function shellResult(raw: RawRun, end: RunEnd): ShellResult {
  const timedOut = end.stopped === "abort" ? null : end.stopped;
  const error: FiwiError | null = timedOut
    ? new TimeoutError(
      timedOut,
      `The ${timedOut} timeout of ${end.limit} ms expired in shell "${end.shell}" on node "${end.node}" running ${
        JSON.stringify(end.cmd)
      }`,
    )
    : null;
  const code = end.stopped ? null : raw.code;
  return {
    cmd: end.cmd,
    code,
    success: code === 0,
    stdout: raw.stdout,
    stderr: raw.stderr,
    timedOut,
    aborted: end.stopped === "abort",
    error,
    durationMs: end.durationMs,
  };
}

/**
 * `pattern` as `expect` searches it: a string literally, a RegExp without
 * g/y (a search must not depend on a previous one's `lastIndex`). Throws a
 * `TypeError` for anything else.
 */
export function expectPattern(pattern: RegExp | string): RegExp {
  if (typeof pattern === "string") {
    return new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  }
  if (pattern instanceof RegExp) {
    return new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ""));
  }
  throw new TypeError(
    `Invalid pattern ${String(pattern)}: give a RegExp or a string`,
  );
}
