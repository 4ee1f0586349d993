/**
 * How a run ended, said one way everywhere: a short key for grouping and
 * for `--json` (`exit 0`, `io timeout`, `aborted`, `unreachable`) and a
 * sentence for people. The log banner of a `Command`, collation by status,
 * discovery's per-node error and every printer of the `fiwi` command take
 * their words from {@linkcode describeOutcome}, so they cannot disagree on
 * wording or on which fact wins. Pure.
 *
 * @example
 * ```ts
 * import { describeOutcome, SshNode } from "../../mod.ts";
 * const node = new SshNode({ name: "here", host: "localhost", transport: "local" });
 * const { key, sentence } = describeOutcome(await node.rexec("exit 3"));
 * console.log(key, "/", sentence); // exit 3 / Exited with code 3
 * ```
 *
 * @module
 */

import {
  AuthenticationError,
  ConnectionError,
  type FiwiError,
  HostKeyError,
} from "../errors.ts";

/**
 * The facts an outcome is read from. A `RunResult` has them all; a
 * `TransferResult` has no exit status, and then success reads as `ok`.
 */
export interface OutcomeFacts {
  /** The run did what was asked. */
  success: boolean;
  /** Which timeout stopped it. */
  timedOut: "connect" | "command" | "io" | null;
  /** Its signal, or `session.close()`, stopped it. */
  aborted: boolean;
  /** Why it failed, when fiwi knows more than an exit status. */
  error: FiwiError | null;
  /** Exit code (runs only). */
  code?: number | null;
  /** The signal that ended the client (runs only). */
  signal?: string | null;
}

/** How a run ended: see {@linkcode describeOutcome}. */
export interface Outcome {
  /**
   * A few stable words; equal keys mean "ended the same way": `exit 0`,
   * `exit 3`, `killed by SIGKILL`, `connect timeout`, `command timeout`,
   * `io timeout`, `aborted`, `unreachable`, `auth failed`,
   * `host key rejected`, and for results without an exit status `ok` or
   * `failed`.
   */
  key: string;
  /**
   * One line for people, sentence case, no trailing period: the error's own
   * message when there is one (it names the node and the cause), otherwise
   * `Exited with code 3`, `Killed by SIGKILL`, `Aborted`, `Succeeded`.
   */
  sentence: string;
}

/**
 * Describe how a run (or a transfer) ended. One precedence for every
 * caller: a timeout, then an abort, then a connection-level error (host
 * key, authentication, unreachable), then the signal or exit code.
 *
 * @param result a `RunResult`, a `TransferResult`, or anything with those facts
 * @returns the key and the sentence
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { ConnectionError, describeOutcome } from "../../mod.ts";
 * const down = {
 *   success: false,
 *   timedOut: null,
 *   aborted: false,
 *   code: 255,
 *   signal: null,
 *   error: new ConnectionError('Cannot reach node "n1": Connection refused'),
 * };
 * assertEquals(describeOutcome(down), {
 *   key: "unreachable",
 *   sentence: 'Cannot reach node "n1": Connection refused',
 * });
 * ```
 */
export function describeOutcome(result: OutcomeFacts): Outcome {
  const { error } = result;
  const said = (key: string, sentence: string): Outcome => ({
    key,
    sentence: error?.message ?? sentence,
  });
  if (result.timedOut) {
    return said(
      `${result.timedOut} timeout`,
      `The ${result.timedOut} timeout expired`,
    );
  }
  if (result.aborted) return said("aborted", "Aborted");
  // Subclasses before the class they might one day extend.
  if (error instanceof HostKeyError) return said("host key rejected", "");
  if (error instanceof AuthenticationError) return said("auth failed", "");
  if (error instanceof ConnectionError) return said("unreachable", "");
  if (result.signal) {
    return said(`killed by ${result.signal}`, `Killed by ${result.signal}`);
  }
  if (typeof result.code === "number") {
    return said(`exit ${result.code}`, `Exited with code ${result.code}`);
  }
  return result.success ? said("ok", "Succeeded") : said("failed", "Failed");
}

/**
 * Whether an outcome key ({@linkcode Outcome.key}, as stored by the state
 * store) is a success: "exit 0", or "ok" for results without an exit code
 * of their own (transfers, power). The one rule the store's counts and the
 * dashboard share.
 *
 * @example
 * ```ts
 * import { isSuccessKey } from "../../mod.ts";
 * console.log(isSuccessKey("exit 0"), isSuccessKey("unreachable")); // true false
 * ```
 */
export function isSuccessKey(key: string): boolean {
  return key === "exit 0" || key === "ok";
}
