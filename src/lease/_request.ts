/**
 * A lease request checked and completed: every value is validated up front
 * (`TypeError`, `RangeError`) before the store is asked anything, and the
 * defaults (owner token, holder) are filled in.
 *
 * @module
 */

import type { LeaseRequest } from "./_lease.ts";

/** Longest `for` and `wait` (about 24 days: what a timer can hold). */
const MAX_MS = 2 ** 31 - 1;

/** A request with its defaults filled in and its values checked. */
export interface Resolved {
  nodes: string[];
  for: number;
  wait: number;
  note: string;
  token: string;
  holder: string;
  force: boolean;
  signal?: AbortSignal;
}

/** `request` checked, with `token` and `holder` as the defaults. */
export function resolveRequest(
  request: LeaseRequest,
  defaults: { token: string; holder: () => string },
): Resolved {
  if (typeof request !== "object" || request === null) {
    throw new TypeError("Invalid lease request: give an object");
  }
  return {
    nodes: checkNodes(request.nodes),
    for: checkMs("duration", request.for, 1),
    wait: checkMs("wait", request.wait ?? 0, 0),
    note: checkText("note", request.note ?? "", true),
    token: checkText("token", request.token ?? defaults.token, false),
    holder: checkText("holder", request.holder ?? defaults.holder(), false),
    force: request.force === true,
    signal: request.signal,
  };
}

export function envOr(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined; // no env permission: as if unset
  }
}

/**
 * The holder a lease names by default: `user@host` of this process (`$USER`
 * or `$LOGNAME`, else `uid<N>`; the host name, else `localhost`, when the
 * permissions to read them are missing).
 *
 * @example
 * ```ts
 * import { defaultLeaseHolder } from "../../mod.ts";
 * console.log(defaultLeaseHolder()); // e.g. "alice@lab-ctl"
 * ```
 */
export function defaultLeaseHolder(): string {
  let user = envOr("USER") ?? envOr("LOGNAME");
  if (!user) {
    try {
      user = `uid${Deno.uid()}`;
    } catch {
      user = "unknown";
    }
  }
  let host = "localhost";
  try {
    host = Deno.hostname();
  } catch {
    // no sys permission: keep "localhost"
  }
  return `${user}@${host}`;
}

export function checkMs(name: string, value: unknown, min: number): number {
  if (
    typeof value !== "number" || !Number.isFinite(value) || value < min ||
    value > MAX_MS
  ) {
    throw new RangeError(
      `Invalid lease ${name} ${
        JSON.stringify(value) ?? String(value)
      }: give ms from ${min === 0 ? 0 : 1} to ${MAX_MS}`,
    );
  }
  return Math.ceil(value);
}

export function checkText(
  name: string,
  value: unknown,
  empty: boolean,
): string {
  if (typeof value !== "string" || (!empty && value.trim() === "")) {
    throw new TypeError(`Invalid lease ${name}: give non-empty text`);
  }
  return value;
}

/** Node names, checked and without repeats, in the order given. */
export function checkNodes(nodes: unknown): string[] {
  if (!Array.isArray(nodes) || nodes.length === 0) {
    throw new TypeError("Invalid lease nodes: give a non-empty list of names");
  }
  for (const n of nodes) checkText("node name", n, false);
  return [...new Set(nodes as string[])];
}
