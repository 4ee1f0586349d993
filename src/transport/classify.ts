/**
 * Failure classification: why a run ended before its command began, told
 * from what the ssh client printed on stderr. Pure.
 *
 * @module
 */

import {
  AuthenticationError,
  ConnectionError,
  type FiwiError,
  HostKeyError,
} from "../errors.ts";

const HOSTKEY_RE =
  /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No \S+ host key is known|host key for .* has changed/i;
const AUTH_RE =
  /Permission denied|Too many authentication failures|Authentication failed/i;

/**
 * Tell why a run ended before its command began, from the client's stderr:
 * {@linkcode HostKeyError}, {@linkcode AuthenticationError}, or else
 * {@linkcode ConnectionError}.
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
  const lines = stderr.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const last = lines.at(-1) ?? `exit code ${code}`;
  const detail = lines.find((l) => HOSTKEY_RE.test(l)) ??
    lines.find((l) => AUTH_RE.test(l)) ?? last;
  if (HOSTKEY_RE.test(stderr)) {
    return new HostKeyError(
      `Host key check failed for node "${node}": ${detail}; update known_hosts or set hostKeyCheck`,
    );
  }
  if (AUTH_RE.test(stderr)) {
    return new AuthenticationError(
      `Authentication failed for node "${node}": ${detail}; check the user and identity file`,
    );
  }
  return new ConnectionError(`Cannot reach node "${node}": ${detail}`);
}
