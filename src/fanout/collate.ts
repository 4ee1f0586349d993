/**
 * Collation: group the results of a fan-out by identical output, the way
 * `dshbak -c` does, so a hundred nodes that all said the same thing print as
 * one block under the list of their names.
 *
 * {@linkcode collate} is pure: it reads results, never a node. Group labels
 * are folded by `formatNodeList` (src/nodeset/fold.ts). {@linkcode formatGroups}
 * prints the groups as `dshbak -c` text; `diffGroups` (diff.ts) shows how
 * they differ.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { unstartedResult } from "../process/run_options.ts";
 * import { collate } from "./collate.ts";
 * const results = ["n1", "n2", "n3"].map((node) => ({
 *   ...unstartedResult({ node, cmd: "x", argv: [], aborted: false, error: null }),
 *   stdout: "ok\n",
 * }));
 * assertEquals(collate(results).map((g) => [g.label, g.output]), [["n[1-3]", "ok\n"]]);
 * ```
 *
 * @module
 */

import { ConfigurationError } from "../errors.ts";
import { formatNodeList } from "../nodeset/fold.ts";
import type { RunResult } from "../process/run_options.ts";
import { describeOutcome } from "../process/outcome.ts";

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
    const key = byStatus ? `${describeOutcome(result).key}\0${output}` : output;
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

/** Options of {@linkcode formatGroups}. */
export interface FormatGroupsOptions {
  /**
   * Put each group under a header: a rule, its node set, a rule (default
   * true). False prints the outputs alone, one after the other, as
   * `clush -bN` does.
   */
  headers?: boolean;
  /**
   * Decorates the node set of each header (e.g. bold on a terminal); it
   * must not add a newline. Default: the node set as is.
   */
  paintLabel?: (label: string) => string;
}

/** A header's rule: as wide as the node set, within 16 to 72 dashes. */
function rule(label: string): string {
  return "-".repeat(Math.max(16, Math.min(72, label.length)));
}

/**
 * Print collated groups the way `dshbak -c` does: each group's node set
 * between two rules, then its output, once. A group whose output does not
 * end in a newline gets one; a group without output prints its header
 * alone.
 *
 * @param groups the groups of {@linkcode collate}
 * @param options headers or none; how a header's node set looks
 * @returns the text, every line ending in `\n` (empty for no groups)
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { collate, formatGroups, SshNode } from "../../mod.ts";
 * const nodes = ["a1", "a2", "b"].map((name) =>
 *   new SshNode({ name, host: "localhost", transport: "local" })
 * );
 * const results = await Promise.all(
 *   nodes.map((n) => n.rexec(n.name === "b" ? "echo other" : "echo same")),
 * );
 * assertEquals(
 *   formatGroups(collate(results)),
 *   "----------------\na[1-2]\n----------------\nsame\n" +
 *     "----------------\nb\n----------------\nother\n",
 * );
 * ```
 */
export function formatGroups(
  groups: readonly OutputGroup[],
  options: FormatGroupsOptions = {},
): string {
  const { headers = true, paintLabel = (label: string) => label } = options;
  let text = "";
  for (const { label, output } of groups) {
    if (headers) {
      text += `${rule(label)}\n${paintLabel(label)}\n${rule(label)}\n`;
    }
    text += output === "" || output.endsWith("\n") ? output : output + "\n";
  }
  return text;
}
