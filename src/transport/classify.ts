/**
 * Failure classification: why a run ended before its command began, told
 * from what the ssh client printed on stderr, as the error a result carries.
 * The reading itself (ssh's messages, one table) is `ssh_errors.ts`. Pure.
 *
 * @module
 */

import {
  AuthenticationError,
  ConnectionError,
  type FiwiError,
  HostKeyError,
} from "../errors.ts";
import { matchSshError } from "./ssh_errors.ts";

/**
 * Tell why a run ended before its command began, from the client's stderr:
 * {@linkcode HostKeyError}, {@linkcode AuthenticationError}, or else
 * {@linkcode ConnectionError}, with the line of stderr that tells it.
 *
 * @example
 * ```ts
 * import { assert } from "jsr:@std/assert@^1";
 * import { AuthenticationError } from "../errors.ts";
 * import { classifyFailure } from "./classify.ts";
 * const e = classifyFailure("n1", 255, "root@h: Permission denied (publickey).\n");
 * assert(e instanceof AuthenticationError);
 * ```
 */
export function classifyFailure(
  node: string,
  code: number | null,
  stderr: string,
): FiwiError {
  const { kind, detail } = matchSshError(stderr);
  const said = detail ?? `exit code ${code}`;
  if (kind === "host-key") {
    return new HostKeyError(
      `Host key check failed for node "${node}": ${said}; update known_hosts or set hostKeyCheck`,
    );
  }
  if (kind === "auth") {
    return new AuthenticationError(
      `Authentication failed for node "${node}": ${said}; check the user and identity file`,
    );
  }
  return new ConnectionError(`Cannot reach node "${node}": ${said}`);
}
