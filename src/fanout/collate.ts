/**
 * Collation: group the results of a fan-out by identical output, the way
 * `dshbak -c` does, so a hundred nodes that all said the same thing print as
 * one block under the list of their names.
 *
 * Both functions here are pure: they read results and names, never a node.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { formatNodeList } from "./collate.ts";
 * assertEquals(formatNodeList(["n1", "n2", "n3", "n7", "relay"]), "n[1-3,7],relay");
 * ```
 *
 * @module
 */

import { ConfigurationError } from "../errors.ts";
import type { RunResult } from "../process/run_options.ts";

/** Which streams decide a group and make up its {@linkcode OutputGroup.output}. */
export type CollateStreams = "stdout" | "stderr" | "both";

/** Options of {@linkcode collate}. */
export interface CollateOptions {
  /**
   * Output that is compared and shown: "stdout", "stderr", or "both"
   * (default: stdout, then stderr, as a terminal would show them).
   */
  streams?: CollateStreams;
  /**
   * Also keep nodes apart whose outcome differs (exit code, signal, timeout,
   * abort, connection error) even when their output is the same. Default
   * false, like `dshbak -c`, which sees only text.
   */
  byStatus?: boolean;
}

/** Nodes that produced the same output. */
export interface OutputGroup {
  /** Node names, in the order their results were given. */
  nodes: string[];
  /** The node names compressed for a header, e.g. `node[0-3,7]`. */
  label: string;
  /** The shared output. */
  output: string;
  /** The results of those nodes, in the same order as `nodes`. */
  results: RunResult[];
}

const STREAMS: readonly CollateStreams[] = ["stdout", "stderr", "both"];

function outputOf(result: RunResult, streams: CollateStreams): string {
  if (streams === "stdout") return result.stdout;
  if (streams === "stderr") return result.stderr;
  const { stdout, stderr } = result;
  // A final fragment without "\n" must not glue onto the first stderr line.
  const joint = stdout !== "" && stderr !== "" && !stdout.endsWith("\n")
    ? "\n"
    : "";
  return stdout + joint + stderr;
}

/** A key that tells outcomes apart; equal keys mean "ended the same way". */
export function outcomeKey(result: RunResult): string {
  if (result.error) return `error:${result.error.name}:${result.error.message}`;
  if (result.timedOut) return `timeout:${result.timedOut}`;
  if (result.aborted) return "aborted";
  if (result.signal) return `signal:${result.signal}`;
  return `exit:${result.code}`;
}

/**
 * Group results by identical output, like `dshbak -c`.
 *
 * Groups come in the order of their first node, so results in node order
 * (as {@linkcode runAll} returns them) give groups in node order.
 *
 * @param results one result per node
 * @param options which streams to compare; whether outcomes split groups
 * @returns one group per distinct output
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { collate, SshNode } from "../../mod.ts";
 * const nodes = ["a1", "a2"].map((name) =>
 *   new SshNode({ name, host: "localhost", transport: "local" })
 * );
 * const results = await Promise.all(nodes.map((n) => n.rexec("echo same")));
 * const groups = collate(results);
 * assertEquals(groups.map((g) => [g.label, g.output]), [["a[1-2]", "same\n"]]);
 * ```
 */
export function collate(
  results: readonly RunResult[],
  options: CollateOptions = {},
): OutputGroup[] {
  const streams = options.streams ?? "both";
  if (!STREAMS.includes(streams)) {
    throw new ConfigurationError(
      `Invalid streams ${
        JSON.stringify(streams)
      }: use "stdout", "stderr" or "both"`,
    );
  }
  const byStatus = options.byStatus ?? false;
  const groups = new Map<string, OutputGroup>();
  for (const result of results) {
    const output = outputOf(result, streams);
    const key = byStatus ? `${outcomeKey(result)}\0${output}` : output;
    let group = groups.get(key);
    if (!group) {
      group = { nodes: [], label: "", output, results: [] };
      groups.set(key, group);
    }
    group.nodes.push(result.node);
    group.results.push(result);
  }
  const list = [...groups.values()];
  for (const group of list) group.label = formatNodeList(group.nodes);
  return list;
}

interface Numbered {
  name: string;
  value: number;
  digits: string;
}

interface Bucket {
  prefix: string;
  suffix: string;
  items: Numbered[];
}

// The last run of digits is the index: "rack2-node07b" → "rack2-node",
// "07", "b"; "r1-eth0" → "r1-eth", "0", "".
const INDEXED = /^(.*?)(\d+)(\D*)$/;

function fits(a: Numbered, b: Numbered): boolean {
  if (b.value !== a.value + 1) return false;
  if (a.digits.length === b.digits.length) return true;
  // Unpadded numbers of any width continue each other (9, 10); zero-padded
  // ones only at their own width (07, 08).
  return !a.digits.startsWith("0") && !b.digits.startsWith("0");
}

/**
 * Compress node names into a pdsh-style host list: names that differ only in
 * their last number share a bracket of ranges (`node[0-3,7]`); zero padding
 * is kept (`n[01-12]`). Duplicates are listed once; name groups keep the
 * order of their first name.
 *
 * @param names node names
 * @returns the compressed list, comma-separated
 */
export function formatNodeList(names: readonly string[]): string {
  const buckets = new Map<string, Bucket>();
  const seen = new Set<string>();
  const parts: (string | Bucket)[] = [];
  for (const name of names) {
    if (seen.has(name)) continue;
    seen.add(name);
    const m = INDEXED.exec(name);
    if (!m) {
      parts.push(name);
      continue;
    }
    const [, prefix, digits, suffix] = m;
    const key = `${prefix}\0${suffix}`;
    let bucket = buckets.get(key);
    if (!bucket) {
      bucket = { prefix, suffix, items: [] };
      buckets.set(key, bucket);
      parts.push(bucket);
    }
    bucket.items.push({ name, value: Number(digits), digits });
  }
  return parts.map((part) => {
    if (typeof part === "string") return part;
    if (part.items.length === 1) return part.items[0].name;
    const items = [...part.items].sort((a, b) =>
      a.value - b.value || a.digits.length - b.digits.length
    );
    const ranges: string[] = [];
    const range = (a: Numbered, b: Numbered) =>
      a === b ? a.digits : `${a.digits}-${b.digits}`;
    let first = items[0];
    let last = items[0];
    for (const item of items.slice(1)) {
      if (fits(last, item)) {
        last = item;
        continue;
      }
      ranges.push(range(first, last));
      first = last = item;
    }
    ranges.push(range(first, last));
    return `${part.prefix}[${ranges.join(",")}]${part.suffix}`;
  }).join(",");
}
