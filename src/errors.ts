/**
 * Error classes of fiwi.
 *
 * Everything fiwi throws or reports is a {@linkcode FiwiError}; callers can
 * branch on the subclass. Messages are one sentence, sentence case, no
 * trailing period, with the offending value quoted.
 *
 * @module
 */

/**
 * Base class of every error fiwi throws or reports in a result.
 *
 * @example
 * ```ts
 * import { ConfigurationError, FiwiError } from "../mod.ts";
 * const err = new ConfigurationError('Host "-oProxyCommand=x" could be read as an option');
 * console.log(err instanceof FiwiError, err.name, err.exitCode); // true "ConfigurationError" 2
 * ```
 */
export class FiwiError extends Error {
  /** Exit code a script should use when this error reaches its top level. */
  exitCode = 1;
  /**
   * Create an error with a one-line message.
   *
   * @param message one-line description: what, where, what to do
   * @param options standard error options; `cause` keeps the original error
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * Bad input from the caller: an empty command, an unsafe host name, a missing
 * identity file or transport binary. Thrown synchronously or as a rejection;
 * nothing has run when it is raised.
 *
 * @example
 * ```ts
 * import { ConfigurationError, SshNode } from "../mod.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * try {
 *   await node.rexec("   ");
 * } catch (e) {
 *   console.log(e instanceof ConfigurationError); // true: nothing ran
 * }
 * ```
 */
export class ConfigurationError extends FiwiError {
  /** Usage and configuration errors exit with code 2. */
  override exitCode = 2;
}

/**
 * The node could not be reached: refused, unresolvable, unreachable, reset.
 *
 * @example
 * ```ts
 * import { ConnectionError, type RunResult } from "../mod.ts";
 * function unreachable(result: RunResult): boolean {
 *   return result.error instanceof ConnectionError;
 * }
 * ```
 */
export class ConnectionError extends FiwiError {}

/**
 * The node answered but refused every key (`Permission denied`).
 *
 * @example
 * ```ts
 * import { AuthenticationError, type RunResult } from "../mod.ts";
 * function keyRefused(result: RunResult): boolean {
 *   return result.error instanceof AuthenticationError;
 * }
 * ```
 */
export class AuthenticationError extends FiwiError {}

/**
 * The node's host key is unknown or changed under strict checking.
 *
 * @example
 * ```ts
 * import { HostKeyError, type RunResult } from "../mod.ts";
 * function hostKeyProblem(result: RunResult): boolean {
 *   return result.error instanceof HostKeyError;
 * }
 * ```
 */
export class HostKeyError extends FiwiError {}

/**
 * A connect, command or io timeout fired.
 *
 * @example
 * ```ts
 * import { SshNode, TimeoutError } from "../mod.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * const result = await node.rexec("sleep 5", { cmdTimeout: 100 });
 * if (result.error instanceof TimeoutError) console.log(result.error.kind); // "command"
 * ```
 */
export class TimeoutError extends FiwiError {
  /** Which timeout fired. */
  readonly kind: "connect" | "command" | "io";
  /**
   * Create a timeout error.
   *
   * @param kind which timeout fired
   * @param message one-line description
   * @param options standard error options
   */
  constructor(
    kind: "connect" | "command" | "io",
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.kind = kind;
  }
}

/**
 * A rig inventory file is malformed; names the file, line and column.
 *
 * @example
 * ```ts
 * import { parseRig, RigFileError } from "../mod.ts";
 * try {
 *   parseRig("rigs:\n  lab:\n    nodes:\n      n1: { hots: 10.0.0.1 }\n");
 * } catch (e) {
 *   if (e instanceof RigFileError) console.log(e.line, e.column, e.message);
 * }
 * ```
 */
export class RigFileError extends FiwiError {
  /** Usage and configuration errors exit with code 2. */
  override exitCode = 2;
  /** Path of the file. */
  readonly file: string;
  /** 1-based line, or 0 when the error is not tied to a place. */
  readonly line: number;
  /** 1-based column, or 0 when the error is not tied to a place. */
  readonly column: number;
  /**
   * Create a rig file error; the message starts with `file:line:column`.
   *
   * @param file path of the rig file
   * @param line 1-based line (0: whole file)
   * @param column 1-based column (0: whole line)
   * @param what what is wrong, without the location
   * @param options standard error options
   */
  constructor(
    file: string,
    line: number,
    column: number,
    what: string,
    options?: ErrorOptions,
  ) {
    const where = line > 0
      ? `${file}:${line}${column > 0 ? `:${column}` : ""}`
      : file;
    super(`${where}: ${what}`, options);
    this.file = file;
    this.line = line;
    this.column = column;
  }
}

/**
 * A value as an error message shows it: JSON for strings and plain data,
 * but `NaN`, `Infinity` and `undefined` by name (JSON would say `null`).
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { showValue } from "./errors.ts";
 * assertEquals([showValue("a b"), showValue(NaN)], ['"a b"', "NaN"]);
 * ```
 */
export function showValue(value: unknown): string {
  if (typeof value === "number" && !Number.isFinite(value)) {
    return String(value);
  }
  if (value === undefined) return "undefined";
  if (typeof value === "bigint") return `${value}n`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
