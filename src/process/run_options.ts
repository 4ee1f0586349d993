/**
 * The options and the result of one run, and the checks every entry point
 * applies to them before anything is spawned.
 *
 * @module
 */

import { ConfigurationError, type FiwiError, showValue } from "../errors.ts";
import type { EofPolicy, Line } from "./lines.ts";
import type { RetryOptions } from "./backoff.ts";

/**
 * Per-run options of `SshSession.postCmd`, `SshNode.rexec` and `runAll`:
 * what a user passes to one run.
 */
export interface RunOptions {
  /** ms until the remote command is known to have begun (default: the node's, 15 s). */
  connectTimeout?: number;
  /** ms of silence on both streams before the run is stopped (default: the node's, none). */
  ioTimeout?: number;
  /** ms of wall clock before the run is stopped (default: the node's, none). */
  cmdTimeout?: number;
  /** Aborting it stops the run the way a timeout does. */
  signal?: AbortSignal;
  /** Called once per line, in order per stream. */
  onLine?: (line: Line) => void;
  /** A trailing fragment without `\n`: emitted (default) or dropped. */
  eof?: EofPolicy;
  /**
   * Written whole to the command's stdin (text line by line), then EOF.
   * Binary-safe. Without it the command reads EOF at once.
   */
  stdin?: string | Uint8Array;
  /** Bytes kept per stream in the result (default 1 MiB); lines still stream. */
  maxOutput?: number;
  /**
   * `SshNode.rexec` only: retry a run whose connection failed before the
   * command began (default: 3 attempts, 1 s then 2 s apart); `false`: one
   * attempt. See src/connection/retry.ts.
   */
  retry?: RetryOptions | false;
}

/**
 * The options of one run inside the library: {@linkcode RunOptions} (less
 * `retry`, which the caller's retry loop handles) plus the raw byte
 * plumbing of file transfers. Internal: not exported from `mod.ts`; run
 * with `runRaw` (src/process/session.ts).
 */
export interface RawRunOptions extends Omit<RunOptions, "stdin" | "retry"> {
  /**
   * As {@linkcode RunOptions.stdin}, or a {@linkcode StdinStream} copied
   * chunk by chunk as the client takes it; every chunk written counts as
   * activity for the io timeout. A stream is read once: a retried run
   * needs a new one.
   */
  stdin?: string | Uint8Array | StdinStream;
  /**
   * Raw stdout: every chunk is handed to it, in order, instead of being
   * split into lines; `onLine` sees stderr only and `stdout` in the result
   * stays empty. A returned promise is awaited before the next chunk is
   * read (backpressure). After it throws, the rest of stdout is read and
   * dropped: the caller decides whether to stop the run.
   */
  stdoutSink?: (chunk: Uint8Array) => void | Promise<void>;
  /**
   * Raw stdout straight into this existing file, written by the client
   * itself: `stdout` in the result stays empty. The file's growth counts as
   * activity for the io timeout and is reported to `onStdoutFile` (bytes so
   * far).
   */
  stdoutFile?: string;
  /** With `stdoutFile`: called with the file's size as it grows. */
  onStdoutFile?: (bytes: number) => void;
}

/**
 * A stdin payload of known size read from a stream: the command reads
 * exactly `size` bytes, then EOF. The stream must yield at least `size`
 * bytes (more are not sent); if it ends short, the command waits for the
 * rest until a timeout or an abort stops it. A stream that errors stops the
 * run as aborted.
 */
export interface StdinStream {
  /** Bytes the command reads. */
  size: number;
  /** Where they come from; read once, so a retried run needs a new one. */
  stream: ReadableStream<Uint8Array>;
  /**
   * The command reads the client's stdin itself, and fiwi closes it after
   * the `size` bytes: no remote copy through `head`, and no watcher. Only
   * for a command that ends by itself when its input ends (a transfer's
   * receiver); the input's EOF is then its lifeline.
   */
  direct?: boolean;
  /**
   * Names bytes that other runs send too (one push to many nodes): a client
   * that can fetch them once for many (a gateway's) does so, and this run's
   * `stream` is then cancelled unread. Equal keys must mean equal bytes.
   */
  share?: object;
}

/** The outcome of one run. */
export interface RunResult {
  /** Node name. */
  node: string;
  /** The command as given. */
  cmd: string;
  /** The argv that was spawned. */
  argv: string[];
  /** Exit code of the local client, or null when it died of a signal. */
  code: number | null;
  /** Signal that ended the local client, if any. */
  signal: string | null;
  /** Exit code 0, began, no timeout, no abort, no error. */
  success: boolean;
  /** Kept stdout (up to `maxOutput` bytes), lines ending in `\n`. */
  stdout: string;
  /** Kept stderr (up to `maxOutput` bytes), without fiwi's start line. */
  stderr: string;
  /** True when either stream exceeded `maxOutput`. */
  truncated: boolean;
  /** The remote command is known to have begun. */
  started: boolean;
  /** Pid of the remote command's shell (its process group), when known. */
  remotePid: number | null;
  /** Which timeout stopped the run, if one did. */
  timedOut: "connect" | "command" | "io" | null;
  /** The run was stopped by its signal or by closing the session. */
  aborted: boolean;
  /**
   * Processes of the command's group that still held its output half a
   * second after its shell exited by itself, and were killed then (0: none;
   * 1 also where the node could not count them).
   */
  killed: number;
  /** What the caller should know beyond the status (e.g. what was killed), or null. */
  notice: string | null;
  /** Why the run failed before the command began, or which timeout fired. */
  error: FiwiError | null;
  /** When the run was spawned. */
  startedAt: Date;
  /** Wall-clock duration of the whole run. */
  durationMs: number;
  /** Attempts `SshNode.rexec` made (retries included); absent from `postCmd`. */
  attempts?: number;
}

/** Default of {@linkcode RunOptions.maxOutput}: 1 MiB per stream. */
export const DEFAULT_MAX_OUTPUT = 1024 * 1024;
/** Longest timeout a timer can hold (about 24.8 days); longer ones are refused. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * Check that a timeout option is a whole or fractional number of ms from 0
 * (none) to {@linkcode MAX_TIMEOUT_MS}; throws {@linkcode ConfigurationError}
 * naming it otherwise.
 */
export function validateTimeout(name: string, value: unknown): void {
  if (value === undefined) return;
  if (
    typeof value !== "number" || Number.isNaN(value) || value < 0 ||
    value > MAX_TIMEOUT_MS
  ) {
    throw new ConfigurationError(
      `Invalid ${name} ${
        showValue(value)
      }: give milliseconds from 0 (none) to ${MAX_TIMEOUT_MS}`,
    );
  }
}

/**
 * Check the options a user passes to one run (timeouts, `maxOutput`,
 * `eof`, `stdin`): throws {@linkcode ConfigurationError} naming the bad
 * value. A stream `stdin` is refused: it is internal plumbing
 * ({@linkcode RawRunOptions}).
 */
export function validateRunOptions(options: RunOptions): void {
  validateCommonOptions(options);
  const { stdin } = options;
  if (
    stdin !== undefined && typeof stdin !== "string" &&
    !(stdin instanceof Uint8Array)
  ) {
    throw new ConfigurationError(
      `Invalid stdin ${showValue(stdin)}: give a string or a Uint8Array`,
    );
  }
}

/**
 * Check the options of one run inside the library: those of
 * {@linkcode validateRunOptions}, a stream `stdin` allowed, and the raw
 * stdout plumbing. Throws {@linkcode ConfigurationError} naming the bad
 * value.
 */
export function validateRawRunOptions(options: RawRunOptions): void {
  validateCommonOptions(options);
  const { stdin, stdoutSink } = options;
  if (
    stdin !== undefined && typeof stdin !== "string" &&
    !(stdin instanceof Uint8Array) && !isStdinStream(stdin)
  ) {
    throw new ConfigurationError(
      `Invalid stdin ${
        showValue(stdin)
      }: give a string, a Uint8Array or { size, stream }`,
    );
  }
  if (stdoutSink !== undefined && typeof stdoutSink !== "function") {
    throw new ConfigurationError(
      `Invalid stdoutSink ${showValue(stdoutSink)}: give a function`,
    );
  }
  validateStdoutFile(options);
}

/** The checks both kinds of run options share (all but `stdin`). */
function validateCommonOptions(options: RawRunOptions | RunOptions): void {
  validateTimeout("connectTimeout", options.connectTimeout);
  validateTimeout("ioTimeout", options.ioTimeout);
  validateTimeout("cmdTimeout", options.cmdTimeout);
  const { maxOutput, eof } = options;
  if (
    maxOutput !== undefined &&
    (typeof maxOutput !== "number" || !Number.isInteger(maxOutput) ||
      maxOutput < 0)
  ) {
    throw new ConfigurationError(
      `Invalid maxOutput ${
        showValue(maxOutput)
      }: give a whole number of bytes >= 0`,
    );
  }
  if (eof !== undefined && eof !== "emit" && eof !== "strict") {
    throw new ConfigurationError(
      `Invalid eof ${showValue(eof)}: use "emit" or "strict"`,
    );
  }
}

function validateStdoutFile(
  { stdoutFile, stdoutSink, onStdoutFile }: RawRunOptions,
): void {
  if (
    stdoutFile !== undefined &&
    (typeof stdoutFile !== "string" || stdoutFile === "" ||
      stdoutSink !== undefined)
  ) {
    throw new ConfigurationError(
      `Invalid stdoutFile ${
        showValue(stdoutFile)
      }: give a file path, and no stdoutSink with it`,
    );
  }
  if (onStdoutFile !== undefined && typeof onStdoutFile !== "function") {
    throw new ConfigurationError(
      `Invalid onStdoutFile ${showValue(onStdoutFile)}: give a function`,
    );
  }
}

/** True for a {@linkcode StdinStream} with a whole, non-negative size. */
export function isStdinStream(value: unknown): value is StdinStream {
  if (typeof value !== "object" || value === null) return false;
  const { size, stream, direct } = value as Partial<StdinStream>;
  return Number.isSafeInteger(size) && size! >= 0 &&
    stream instanceof ReadableStream &&
    (direct === undefined || typeof direct === "boolean");
}

/**
 * The result of a run that never spawned (aborted before it began, or a
 * caller's own failure): nothing ran, nothing was kept.
 */
export function unstartedResult(
  fields: Pick<RunResult, "node" | "cmd" | "argv" | "aborted" | "error">,
): RunResult {
  return {
    ...fields,
    code: null,
    signal: null,
    success: false,
    stdout: "",
    stderr: "",
    truncated: false,
    started: false,
    remotePid: null,
    timedOut: null,
    killed: 0,
    notice: null,
    startedAt: new Date(),
    durationMs: 0,
  };
}
