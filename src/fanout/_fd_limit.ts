/**
 * The open-file limit against a fan-out. Every client fiwi runs holds three
 * pipes here (stdin, the lifeline; stdout; stderr), so a fan-out of F
 * needs about 3·F descriptors besides the runtime's own. Past the limit,
 * spawning fails with EMFILE node after node; {@linkcode checkOpenFiles}
 * says so once, with the fix, before any node is touched.
 *
 * The limit is read once per process through `sh -c 'ulimit -n'`: a child
 * inherits this process's limit, and Deno reads /proc only with
 * --allow-all. (Deno raises its soft limit to the hard one at start, so
 * the number is what the process really has.) It is the one spawn outside
 * src/process/spawn.ts: synchronous, so that a fan-out still starts its
 * first jobs in the tick it is called (what runAll's callers and tests
 * count on), and a one-shot with no pipe to tear down.
 *
 * @module
 */

import { ConfigurationError } from "../errors.ts";

/** Descriptors a client holds while it runs: its three pipes. */
export const FDS_PER_CLIENT = 3;
/**
 * Descriptors kept for everything else: the runtime (about 20), the log
 * file, the state store and its WAL, and the short helpers that run beside
 * the clients (`ssh -O check` of new masters, `ps`).
 */
export const FD_RESERVE = 96;
/** Fan-outs below this are not checked: any usable limit carries them. */
export const FD_CHECK_FROM = 16;

let limit: number | null | undefined;

/**
 * The open-file limit of this process (Infinity: unlimited), null when
 * unknown. Looked up once, synchronously (a few ms, once per process), so
 * a fan-out starts its first jobs in the same tick as before.
 */
export function openFileLimit(): number | null {
  if (limit !== undefined) return limit;
  limit = null;
  try {
    // Never a permission prompt for this: without sh, the limit is unknown.
    if (
      Deno.permissions.querySync({ name: "run", command: "sh" }).state !==
        "granted"
    ) {
      return limit;
    }
    const out = new Deno.Command("sh", {
      args: ["-c", "ulimit -n"],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    const text = new TextDecoder().decode(out.stdout).trim();
    if (out.code !== 0) return limit;
    if (text === "unlimited") return limit = Infinity;
    const n = Number(text);
    if (Number.isInteger(n) && n > 0) limit = n;
  } catch { /* no sh, or not allowed to run it: unknown */ }
  return limit;
}

/** Descriptors a fan-out of `fanout` clients needs, about. */
export function openFilesNeeded(fanout: number): number {
  return FD_RESERVE + FDS_PER_CLIENT * fanout;
}

/** The largest fan-out `limit` descriptors carry. */
export function fanoutWithin(limit: number): number {
  return Math.max(1, Math.floor((limit - FD_RESERVE) / FDS_PER_CLIENT));
}

/**
 * Throw a {@linkcode ConfigurationError} when `fanout` clients at once
 * would need more open files than this process may have. Returns at once
 * for a small fan-out or an unknown limit.
 */
export function checkOpenFiles(fanout: number): void {
  if (fanout < FD_CHECK_FROM) return;
  const max = openFileLimit();
  if (max === null) return;
  const needed = openFilesNeeded(fanout);
  if (needed <= max) return;
  throw new ConfigurationError(
    `Fan-out ${fanout} needs about ${needed} open files, the limit is ${max}: raise it with "ulimit -n ${needed}" or lower the fan-out (-f) to ${
      fanoutWithin(max)
    }`,
  );
}
