/**
 * Result assembly: what one run's facts (exit status, start line, which
 * timeout fired, kept output) add up to. Pure.
 *
 * @module
 */

import { ConnectionError, type FiwiError, TimeoutError } from "../errors.ts";
import { classifyFailure } from "../transport/classify.ts";
import type { TimeoutKind } from "./watchdog.ts";
import type { RunResult } from "./run_options.ts";

import { LINGER_MS } from "../transport/wrapper.ts";

/** Everything a run learned, as {@linkcode buildResult} needs it. */
export interface RunFacts {
  /** Node name. */
  node: string;
  /** The command as given. */
  cmd: string;
  /** The argv spawned. */
  argv: string[];
  /** The client's exit. */
  status: { code: number; signal: string | null; success: boolean };
  /** The remote pid from the start line, or null. */
  remotePid: number | null;
  /** Which timeout stopped the run. */
  timedOut: TimeoutKind | null;
  /** The limit in ms of the timeout that fired. */
  limit?: number;
  /** Stopped by abort or close. */
  aborted: boolean;
  /** Processes killed after the linger (see `RunResult.killed`). */
  killed?: number;
  /** Why the connection was given up before the start line (a connection error). */
  lost?: string;
  /** Kept output. */
  stdout: string;
  /** Kept stderr, start line removed. */
  stderr: string;
  /** Either stream hit `maxOutput`. */
  truncated: boolean;
  /** When the client was spawned. */
  startedAt: Date;
  /** Duration in ms. */
  durationMs: number;
}

/**
 * The {@linkcode RunResult} of a run: a timeout is a {@linkcode TimeoutError};
 * a client that failed before the start line is classified from its stderr;
 * `success` needs exit 0, a start line, no timeout, no abort.
 */
export function buildResult(f: RunFacts): RunResult {
  const started = f.remotePid !== null;
  let error: FiwiError | null = null;
  if (f.timedOut) {
    error = new TimeoutError(
      f.timedOut,
      `The ${f.timedOut} timeout of ${f.limit} ms expired on node "${f.node}" running ${
        JSON.stringify(f.cmd)
      }`,
    );
  } else if (f.lost) {
    error = new ConnectionError(f.lost);
  } else if (!f.aborted && !started && f.status.code !== 0) {
    error = classifyFailure(f.node, f.status.code, f.stderr);
  }
  return {
    node: f.node,
    cmd: f.cmd,
    argv: f.argv,
    code: f.status.signal ? null : f.status.code,
    signal: f.status.signal ?? null,
    success: f.status.success && started && !f.timedOut && !f.aborted &&
      !error,
    stdout: f.stdout,
    stderr: f.stderr,
    truncated: f.truncated,
    started,
    remotePid: f.remotePid,
    timedOut: f.timedOut,
    aborted: f.aborted,
    killed: f.killed ?? 0,
    notice: f.killed
      ? `${f.killed} background process${
        f.killed === 1 ? "" : "es"
      } still held the output of the command on node "${f.node}" ${
        LINGER_MS / 1000
      } s after its shell exited, and ${f.killed === 1 ? "was" : "were"} killed`
      : null,
    error,
    startedAt: f.startedAt,
    durationMs: f.durationMs,
  };
}
