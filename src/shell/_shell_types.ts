/**
 * The options, result and target of a persistent shell (src/shell/shell.ts
 * re-exports them; `mod.ts` exports them from there).
 *
 * @module
 */

import type { FiwiError } from "../errors.ts";
import type { SessionNode } from "../process/session.ts";
import type { RetryOptions } from "../process/backoff.ts";

/** Options of `openShell` (`node.openShell(name, options)`). */
export interface ShellOptions {
  /** Remote shell program (default "sh"). */
  shell?: string;
  /** ms until the remote shell is known to run (default: the node's). */
  connectTimeout?: number;
  /** Retry opening when the connection fails (as `rexec`; default on). */
  retry?: RetryOptions | false;
  /** Aborting it stops opening (and waiting between attempts). */
  signal?: AbortSignal;
}

/** Options of `Shell.run`. */
export interface ShellRunOptions {
  /**
   * ms the command may take (its command timeout); on expiry the shell is
   * closed and the run resolves with `timedOut: "command"`. Default none.
   */
  timeout?: number;
  /**
   * Aborting it resolves the run with `aborted: true`: a run still queued
   * leaves the shell as it is, a run already written to it closes it.
   */
  signal?: AbortSignal;
}

/** Options of `Shell.expect`. */
export interface ExpectOptions {
  /** ms to wait for the pattern (default 30 000; 0: no limit). */
  timeout?: number;
  /** Aborting it stops the wait, which rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * What one `Shell.run` produced. A timeout or an abort is reported the way
 * `rexec` reports it (`timedOut`, `aborted`, `error`), with the output that
 * arrived before it.
 */
export interface ShellResult {
  /** The command as given. */
  cmd: string;
  /**
   * Its exit status (the shell's, when the command ended the shell); null
   * when the run timed out or was aborted.
   */
  code: number | null;
  /** Exit status 0, no timeout, no abort. */
  success: boolean;
  /** Everything it wrote to stdout (before the timeout or abort, if any). */
  stdout: string;
  /** Everything it wrote to stderr (before the timeout or abort, if any). */
  stderr: string;
  /**
   * Which limit stopped it: "command" for {@linkcode ShellRunOptions.timeout}
   * (the same union as a `RunResult`'s; a shell is connected before its
   * first run, so "connect" does not occur here), or null.
   */
  timedOut: "connect" | "command" | "io" | null;
  /** Its signal aborted it. */
  aborted: boolean;
  /** A `TimeoutError` when it timed out, else null. */
  error: FiwiError | null;
  /** Wall-clock duration. */
  durationMs: number;
}

/**
 * What a shell needs of a node: a run's needs without its defaults. Opening
 * waits in {@linkcode SessionNode.admit} as every run does. `SshNode`
 * satisfies it.
 */
export type ShellNode =
  & Pick<
    SessionNode,
    | "name"
    | "transport"
    | "connectTimeout"
    | "prepare"
    | "transportArgv"
    | "admit"
  >
  & {
    /** Retry policy when opening gives none (absent: the default). */
    readonly retry?: RetryOptions | false;
  };
