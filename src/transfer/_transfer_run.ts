/**
 * What a push and a pull share: their options and result, the checks of
 * their arguments, and running one remote step of a transfer the way
 * `rexec` runs a command (retried while the connection fails before it
 * begins, a broken master repaired).
 *
 * @module
 */

import { ConfigurationError, FiwiError, showValue } from "../errors.ts";
import { resolveRetry, type RetryOptions } from "../process/backoff.ts";
import {
  type RawRunOptions,
  type RunResult,
  validateTimeout,
} from "../process/run_options.ts";
import { runRaw, type SessionNode } from "../process/session.ts";
import { controlPool, type PoolNode } from "../connection/pool.ts";
import { retryRun } from "../connection/retry.ts";
import { firstLines } from "./_transfer_local.ts";

/** Options of a push or a pull. Times are milliseconds. */
export interface TransferOptions {
  /** Aborting it stops the transfer; nothing is left under a final name. */
  signal?: AbortSignal;
  /** ms until the remote side is known to have begun (default: the node's). */
  connectTimeout?: number;
  /** ms without a byte moving before the transfer is stopped (default: the node's). */
  ioTimeout?: number;
  /** ms of wall clock per remote run (default: the node's). */
  cmdTimeout?: number;
  /** Compare the SHA-256 of every file on both ends (default false). */
  verify?: boolean;
  /** Called with the bytes moved so far (the tar stream) as they move. */
  onProgress?: (bytes: number) => void;
}

/** The outcome of a push or a pull on one node. */
export interface TransferResult {
  /** Node name. */
  node: string;
  /** Everything arrived and was put in place (and verified, if asked). */
  success: boolean;
  /**
   * Entries transferred that are not directories (files and links). When
   * the transfer failed: only those it put in place under their final
   * names (usually 0).
   */
  files: number;
  /**
   * Bytes of the stream moved (contents plus tar headers). When the
   * transfer failed: only the bytes of the files it put in place under
   * their final names (usually 0), never what was sent or received and
   * then thrown away.
   */
  bytes: number;
  /** Which timeout stopped the transfer, if one did. */
  timedOut: "connect" | "command" | "io" | null;
  /** The transfer was stopped by its signal. */
  aborted: boolean;
  /** Why it failed: the connection's error, a timeout, or what the node said. */
  error: FiwiError | null;
  /** Wall-clock duration. */
  durationMs: number;
}

/** What a transfer needs of a node: `SshNode` satisfies it. */
export type TransferNode = SessionNode & PoolNode & {
  /** Retry policy of the transfer's runs (absent: the default). */
  readonly retry?: RetryOptions | false;
};

/**
 * Check transfer options; throws {@linkcode ConfigurationError} naming the
 * bad value.
 */
export function validateTransferOptions(options: TransferOptions): void {
  validateTimeout("connectTimeout", options.connectTimeout);
  validateTimeout("ioTimeout", options.ioTimeout);
  validateTimeout("cmdTimeout", options.cmdTimeout);
  const { verify, onProgress, signal } = options;
  if (verify !== undefined && typeof verify !== "boolean") {
    throw new ConfigurationError(
      `Invalid verify ${showValue(verify)}: give true or false`,
    );
  }
  if (onProgress !== undefined && typeof onProgress !== "function") {
    throw new ConfigurationError(
      `Invalid onProgress ${showValue(onProgress)}: give a function`,
    );
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new ConfigurationError(
      `Invalid signal ${showValue(signal)}: give an AbortSignal`,
    );
  }
}

/** Refuse a destination that is not a usable path. */
export function validateDestDir(destDir: unknown): asserts destDir is string {
  if (
    typeof destDir !== "string" || destDir.trim() === "" ||
    destDir.includes("\0")
  ) {
    throw new ConfigurationError(
      `Invalid destination directory ${
        showValue(destDir)
      }: give a directory path`,
    );
  }
}

/**
 * The run options of one remote run of a transfer: the internal kind, which
 * the transfer adds its stream stdin or raw stdout to.
 */
export function runOptions(options: TransferOptions): RawRunOptions {
  return {
    connectTimeout: options.connectTimeout,
    ioTimeout: options.ioTimeout,
    cmdTimeout: options.cmdTimeout,
    signal: options.signal,
  };
}

/**
 * Run `cmd` on `node` like `rexec` does (retried while the connection
 * fails before it begins, a broken master repaired), with fresh options
 * per attempt: a stream payload can be read only once.
 */
export function runWithRetry(
  node: TransferNode,
  cmd: string,
  options: () => RawRunOptions,
  signal?: AbortSignal,
): Promise<RunResult> {
  return retryRun(
    () => runRaw(node, cmd, options()),
    resolveRetry(node.retry),
    {
      signal,
      onFailure: node.controlMaster
        ? (result) => controlPool.recover(node, result)
        : undefined,
    },
  );
}

/** A {@linkcode TransferResult} from the run that did the transfer. */
export function resultOf(
  node: string,
  run: RunResult | null,
  fields: { files: number; bytes: number; error: FiwiError | null },
  t0: number,
): TransferResult {
  const error = run?.error ?? fields.error;
  return {
    node,
    success: error === null && !run?.aborted,
    files: fields.files,
    bytes: fields.bytes,
    timedOut: run?.timedOut ?? null,
    aborted: run?.aborted ?? false,
    error,
    durationMs: performance.now() - t0,
  };
}

/** What the node said about a failed run, as one error naming node and path. */
export function remoteFailure(
  what: string,
  node: string,
  path: string,
  run: RunResult,
): FiwiError | null {
  if (run.success || run.error || run.aborted) return null;
  const said = firstLines(run.stderr) || `exit ${run.code ?? run.signal}`;
  return new FiwiError(`${what} "${path}" on node "${node}" failed: ${said}`);
}
