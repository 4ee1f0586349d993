/**
 * Files to and from many nodes at once: {@linkcode pushAll} and
 * {@linkcode pullAll}, with the concurrency bound and `failFast` of
 * `runAll` (src/fanout/_fan_out.ts). A push to many nodes packs its sources
 * once and sends the same archive to each.
 *
 * @example
 * ```ts
 * import { pullAll, pushAll, SshNode } from "../../mod.ts";
 * const nodes = ["a", "b"].map((name) =>
 *   new SshNode({ name, host: "localhost", transport: "local" })
 * );
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/fw.bin`, "firmware");
 * const pushed = await pushAll(nodes, `${dir}/fw.bin`, `${dir}/remote`);
 * const pulled = await pullAll(nodes, `${dir}/remote/fw.bin`, `${dir}/logs`);
 * console.log(pushed.map((r) => r.success), pulled.map((r) => r.files));
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

import {
  checkPull,
  packForPush,
  preparePullDirs,
  pull,
  pushArchive,
  type TransferNode,
  type TransferOptions,
  type TransferResult,
  validateTransferOptions,
} from "../transfer/transfer.ts";
import { ConfigurationError, showValue } from "../errors.ts";
import { DEFAULT_CONCURRENCY } from "./run_all.ts";
import { fanOut, validateFanOut } from "./_fan_out.ts";

/** Options of {@linkcode pushAll} and {@linkcode pullAll}. */
export interface TransferAllOptions extends TransferOptions {
  /** Most transfers in flight at once, per gateway too (default 64, as `runAll`). */
  concurrency?: number;
  /**
   * On the first transfer that fails, abort the others: running ones are
   * stopped (nothing left under a final name), waiting ones never start.
   */
  failFast?: boolean;
  /** Called with each node's result as soon as that node is done. */
  onResult?: (result: TransferResult) => void;
}

function split(options: TransferAllOptions) {
  const {
    concurrency = DEFAULT_CONCURRENCY,
    failFast = false,
    onResult,
    ...rest
  } = options;
  if (onResult !== undefined && typeof onResult !== "function") {
    throw new ConfigurationError(
      `Invalid onResult ${showValue(onResult)}: give a function`,
    );
  }
  const report = (r: TransferResult) => {
    onResult?.(r);
    return r;
  };
  return { concurrency, failFast, rest, report };
}

/**
 * Per-node transfer options whose `onProgress` reports the bytes moved by
 * all nodes together, and `settle`, which replaces a finished node's share
 * with what its result counts: a failed transfer's bytes that never landed
 * leave the total.
 */
function summedProgress(
  nodes: number,
  options: TransferOptions,
): {
  optionsFor: (index: number, signal: AbortSignal) => TransferOptions;
  settle: (index: number, result: TransferResult) => TransferResult;
} {
  const report = options.onProgress;
  const each = new Array<number>(nodes).fill(0);
  let total = 0;
  const update = (index: number, bytes: number) => {
    total += bytes - each[index];
    each[index] = bytes;
    report?.(total);
  };
  return {
    optionsFor: (index, signal) => ({
      ...options,
      signal,
      onProgress: report && ((bytes) => update(index, bytes)),
    }),
    settle: (index, result) => {
      if (result.bytes !== each[index]) update(index, result.bytes);
      return result;
    },
  };
}

const failed = (r: TransferResult) => !r.success && !r.aborted;

/**
 * Copy local `sources` into `destDir` on every node, at most `concurrency`
 * at a time; one {@linkcode TransferResult} per node, in node order.
 * Rejects only for bad input (a missing source: `ConfigurationError`
 * naming it), before anything runs. `onProgress` gets the bytes sent to
 * all nodes together (a node that failed counts, once done, only what it
 * put in place).
 *
 * @param nodes where to copy to, in the order results are wanted
 * @param sources local files or directories
 * @param destDir the remote directory (created if missing)
 * @param options fan-out limits, then the transfer options
 *
 * @example
 * ```ts
 * import { pushAll, SshNode } from "../../mod.ts";
 * const src = await Deno.makeTempFile();
 * const dest = await Deno.makeTempDir();
 * const nodes = [new SshNode({ name: "here", host: "localhost", transport: "local" })];
 * const [result] = await pushAll(nodes, src, dest);
 * console.log(result.success, result.files); // true 1
 * await Deno.remove(dest, { recursive: true });
 * await Deno.remove(src);
 * ```
 */
export async function pushAll(
  nodes: readonly TransferNode[],
  sources: string | readonly string[],
  destDir: string,
  options: TransferAllOptions = {},
): Promise<TransferResult[]> {
  const { concurrency, failFast, rest, report } = split(options);
  validateFanOut(nodes, concurrency, failFast);
  validateTransferOptions(rest);
  await Promise.all(nodes.map((node) => node.prepare()));
  await using archive = await packForPush(sources, destDir, rest);
  const { optionsFor, settle } = summedProgress(nodes.length, rest);
  return await fanOut(
    nodes.map((node, index) => ({ node, index })),
    { concurrency, failFast, signal: rest.signal },
    ({ node, index }, signal) =>
      pushArchive(node, archive, destDir, optionsFor(index, signal))
        .then((r) => report(settle(index, r))),
    failed,
  );
}

/**
 * Copy remote `sources` from every node into `destDir/<node name>/`, at
 * most `concurrency` at a time; one {@linkcode TransferResult} per node, in
 * node order. Rejects only for bad input, before anything runs (an unsafe
 * `destDir/<node>`, one another user could redirect, included).
 * `onProgress` gets the bytes received from all nodes together (a node
 * that failed counts, once done, only what it put in place).
 *
 * @param nodes where to copy from, in the order results are wanted
 * @param sources remote files or directories
 * @param destDir the local directory; each node gets a directory in it
 * @param options fan-out limits, then the transfer options
 *
 * @example
 * ```ts
 * import { pullAll, SshNode } from "../../mod.ts";
 * const src = await Deno.makeTempFile();
 * const dest = await Deno.makeTempDir();
 * const nodes = [new SshNode({ name: "here", host: "localhost", transport: "local" })];
 * const [result] = await pullAll(nodes, src, dest); // into dest/here/
 * console.log(result.success, result.files); // true 1
 * await Deno.remove(dest, { recursive: true });
 * await Deno.remove(src);
 * ```
 */
export async function pullAll(
  nodes: readonly TransferNode[],
  sources: string | readonly string[],
  destDir: string,
  options: TransferAllOptions = {},
): Promise<TransferResult[]> {
  const { concurrency, failFast, rest, report } = split(options);
  validateFanOut(nodes, concurrency, failFast);
  checkPull(nodes, sources, destDir, rest);
  await Promise.all(nodes.map((node) => node.prepare()));
  // Every node's directory is checked before any pull starts.
  await preparePullDirs(nodes, destDir);
  const { optionsFor, settle } = summedProgress(nodes.length, rest);
  return await fanOut(
    nodes.map((node, index) => ({ node, index })),
    { concurrency, failFast, signal: rest.signal },
    ({ node, index }, signal) =>
      pull(node, sources, destDir, optionsFor(index, signal))
        .then((r) => report(settle(index, r))),
    failed,
  );
}
