/**
 * Node sets in the clush style, evaluated against a rig's names and groups.
 * Items: node names, `@group`, globs (`dut*`, `rack?-[ab]`), numeric ranges
 * with zero padding and steps (`n[01-64/8]`, `dut[1-3,7]`), `all`, and
 * hosts outside the rig written `[user@]host[:port]` (`root@10.0.0.5:2222`,
 * `[::1]:2222`, `lab.example.com`). Operators: `,` union, `!` difference,
 * `&` intersection, `^` symmetric difference, read strictly from left to
 * right as ClusterShell does (`a,b&c` is `(a,b)&c`); a pattern that starts
 * with `!` starts from every node. Pure functions with no dependency above
 * `errors.ts`: the rig supplies names and groups and turns ad-hoc hosts into
 * nodes. Folding (`foldNames`, `formatNodeList`) is in fold.ts.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { expandRanges, foldNames } from "./nodeset.ts";
 * assertEquals(expandRanges("n[01-05/2]"), ["n01", "n03", "n05"]);
 * assertEquals(foldNames(["n01", "n02", "n03", "pdu"]), "n[01-03],pdu");
 * ```
 *
 * @module
 */

import { globToRegExp } from "jsr:@std/path@^1";
import { levenshteinDistance } from "jsr:@std/text@^1/levenshtein-distance";
import { ConfigurationError } from "../errors.ts";

// Folding lives beside expanding, in fold.ts; re-exported so this file is
// the whole node-set API.
export { foldNames, formatNodeList } from "./fold.ts";

/** What a pattern is matched against. */
export interface NodeSetUniverse {
  /** Rig name, for messages. */
  rig: string;
  /** Node names in rig order. */
  names: readonly string[];
  /** Group name to member names. */
  groups: ReadonlyMap<string, readonly string[]>;
}

/** A host outside the rig, from `[user@]host[:port]`. */
export interface AdHocHost {
  /** The text as written: the node's name. */
  text: string;
  /** Host name or address (IPv6 without brackets). */
  host: string;
  /** Login name, when given. */
  user?: string;
  /** Port, when given. */
  port?: number;
}

/** The set operators, in the order a pattern gives them. */
export type NodeSetOperator = "," | "!" | "&" | "^";

/** One operand of a pattern and the operator before it. */
export interface NodeSetTerm {
  /** How the item combines with what precedes it. */
  op: NodeSetOperator;
  /** The item text, trimmed. */
  item: string;
}

/**
 * Most names one item may expand to (ranges multiply).
 *
 * @example
 * ```ts
 * import { expandRanges, MAX_EXPANSION } from "./nodeset.ts";
 * console.log(MAX_EXPANSION); // 100000
 * try {
 *   expandRanges("n[1-1000][1-1000]"); // a million names
 * } catch (e) {
 *   console.log((e as Error).message); // "… expands to 1000000 names: at most 100000"
 * }
 * ```
 */
export const MAX_EXPANSION = 100_000;

const OPERATORS = new Set([",", "!", "&", "^"]);

/**
 * Split a pattern into terms at operators outside brackets. A leading `!`
 * means "every node but"; `,!` is the same as `!` (`all,!dut3`).
 *
 * @example
 * ```ts
 * import { parseNodeSet } from "./nodeset.ts";
 * const terms = parseNodeSet("@duts,!dut3");
 * console.log(terms.map((t) => `${t.op} ${t.item}`)); // [", @duts", "! dut3"]
 * ```
 */
export function parseNodeSet(pattern: string): NodeSetTerm[] {
  const terms: NodeSetTerm[] = [];
  let op: NodeSetOperator = ",";
  let depth = 0;
  let start = 0;
  const push = (end: number) => {
    const item = pattern.slice(start, end).trim();
    if (item === "") {
      const why = end >= pattern.length
        ? `nothing follows "${op}"`
        : terms.length === 0
        ? `"${pattern[end]}" needs a node set before it`
        : "it has an empty item";
      throw new ConfigurationError(`Invalid node pattern "${pattern}": ${why}`);
    }
    terms.push({ op, item });
  };
  let i = 0;
  if (pattern.trimStart().startsWith("!")) {
    terms.push({ op: ",", item: "all" });
    op = "!";
    i = start = pattern.indexOf("!") + 1;
  }
  for (; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === "[") depth++;
    else if (ch === "]") depth = Math.max(0, depth - 1);
    else if (depth === 0 && OPERATORS.has(ch)) {
      push(i);
      op = ch as NodeSetOperator;
      if (ch === "," && pattern[i + 1] === "!") {
        op = "!";
        i++;
      }
      start = i + 1;
    }
  }
  push(pattern.length);
  return terms;
}

/** `[...]` contents that are a numeric range list: `1-3,7`, `01-64/8`. */
const RANGE_LIST = /^\d+(?:-\d+(?:\/\d+)?)?(?:,\d+(?:-\d+(?:\/\d+)?)?)*$/;

/** An item cut at its range brackets: text, range, text, … */
function splitRanges(item: string): (string | string[])[] {
  const parts: (string | string[])[] = [];
  let text = "";
  let i = 0;
  while (i < item.length) {
    const close = item[i] === "[" ? item.indexOf("]", i) : -1;
    const inside = close > 0 ? item.slice(i + 1, close) : "";
    if (close > 0 && RANGE_LIST.test(inside)) {
      parts.push(text, rangeNumbers(inside, item));
      text = "";
      i = close + 1;
    } else {
      text += item[i++];
    }
  }
  parts.push(text);
  return parts;
}

/** The numbers of a range list, padded as written. */
function rangeNumbers(list: string, item: string): string[] {
  const out: string[] = [];
  for (const part of list.split(",")) {
    const [span, stepText = "1"] = part.split("/");
    const [a, b = a] = span.split("-");
    const lo = Number(a);
    const hi = Number(b);
    const step = Number(stepText);
    if (hi < lo) {
      throw new ConfigurationError(
        `Invalid range "${part}" in node pattern "${item}": the end is below the start`,
      );
    }
    if (step < 1) {
      throw new ConfigurationError(
        `Invalid range "${part}" in node pattern "${item}": the step must be 1 or more`,
      );
    }
    if ((hi - lo) / step >= MAX_EXPANSION) {
      throw new ConfigurationError(
        `Range "${part}" in node pattern "${item}" is too large: at most ${MAX_EXPANSION} numbers`,
      );
    }
    const width = a.length > 1 && a.startsWith("0") ? a.length : 0;
    for (let n = lo; n <= hi; n += step) {
      out.push(String(n).padStart(width, "0"));
    }
  }
  return out;
}

/**
 * Expand numeric ranges: `dut[1-3,7]` → dut1 dut2 dut3 dut7; `n[01-64/8]`
 * → n01 n09 … n57 (a start with leading zeros pads every number to its
 * width). Brackets that hold no range (`[ab]`, `[::1]`) stay as written.
 * Throws {@linkcode ConfigurationError} for a reversed range, a zero step,
 * or more than {@linkcode MAX_EXPANSION} names.
 *
 * @example
 * ```ts
 * import { expandRanges } from "./nodeset.ts";
 * console.log(expandRanges("n[01-03]")); // ["n01", "n02", "n03"]
 * console.log(expandRanges("rack[1-2]-n[1,5]")); // 4 names, rack1-n1 first
 * ```
 */
export function expandRanges(item: string): string[] {
  const parts = splitRanges(item);
  let total = 1;
  for (const p of parts) if (Array.isArray(p)) total *= p.length;
  if (total > MAX_EXPANSION) {
    throw new ConfigurationError(
      `Node pattern "${item}" expands to ${total} names: at most ${MAX_EXPANSION}`,
    );
  }
  let names = [""];
  for (const p of parts) {
    if (typeof p === "string") names = names.map((n) => n + p);
    else names = names.flatMap((n) => p.map((num) => n + num));
  }
  return names;
}

/**
 * Read `[user@]host[:port]` (IPv6 as `[::1]:22`, or bare `::1` without a
 * port). Null for text that does not name a host outside the rig: a plain
 * word (a rig name or a typo of one), `@group`, a glob.
 *
 * @example
 * ```ts
 * import { parseAdHocHost } from "./nodeset.ts";
 * console.log(parseAdHocHost("pi@10.0.0.7:2222")); // host "10.0.0.7", user "pi", port 2222
 * console.log(parseAdHocHost("@duts")); // null: a group, not a host
 * ```
 */
export function parseAdHocHost(text: string): AdHocHost | null {
  if (/[*?,!&^\s]/.test(text) || text.startsWith("@")) return null;
  const at = text.lastIndexOf("@");
  const user = at > 0 ? text.slice(0, at) : undefined;
  const rest = text.slice(at + 1);
  let host = rest;
  let portText: string | undefined;
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close < 0 || !rest.slice(1, close).includes(":")) return null;
    host = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after !== "" && !after.startsWith(":")) return null;
    if (after !== "") portText = after.slice(1);
  } else if ((rest.match(/:/g) ?? []).length === 1) {
    [host, portText] = rest.split(":");
  } else if (!rest.includes(":") && !rest.includes(".") && !user) {
    return null; // a plain word: a rig name or a typo of one
  }
  if (host === "" || /[[\]]/.test(host)) return null;
  const found: AdHocHost = { text, host };
  if (user !== undefined) found.user = user;
  if (portText !== undefined) {
    const port = Number(portText);
    if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
      throw new ConfigurationError(
        `Invalid port "${portText}" in host "${text}": use a whole number from 1 to 65535`,
      );
    }
    found.port = port;
  }
  return found;
}

/** Names one item stands for: rig names, or ad-hoc host texts. */
function matchItem(
  item: string,
  u: NodeSetUniverse,
  known: ReadonlySet<string>,
): string[] {
  if (item === "all" || item === "*") return [...u.names];
  if (item.startsWith("@")) {
    return expandRanges(item.slice(1)).flatMap((g) => groupMembers(g, u));
  }
  const out: string[] = [];
  for (const name of expandRanges(item)) {
    if (known.has(name)) out.push(name);
    else if (/[*?[]/.test(name) && !parseAdHocHost(name)) {
      const re = globToRegExp(name, { extended: false, globstar: false });
      for (const n of u.names) if (re.test(n)) out.push(n);
    } else if (parseAdHocHost(name)) out.push(name);
  }
  return out;
}

function groupMembers(group: string, u: NodeSetUniverse): readonly string[] {
  const members = u.groups.get(group);
  if (members) return members;
  const known = [...u.groups.keys()];
  const hint = closest(group, known);
  throw new ConfigurationError(
    `Group "${group}" is not defined in rig "${u.rig}": ` +
      (hint
        ? `did you mean "@${hint}"?`
        : known.length
        ? `known groups are ${listed(known.map((g) => `@${g}`))}`
        : `no node has groups`),
  );
}

/** Apply one term to the working set, in place. */
function apply(set: Set<string>, op: NodeSetOperator, hits: string[]): void {
  switch (op) {
    case ",":
      for (const h of hits) set.add(h);
      return;
    case "!":
      for (const h of hits) set.delete(h);
      return;
    case "&": {
      const keep = new Set(hits);
      for (const n of set) if (!keep.has(n)) set.delete(n);
      return;
    }
    case "^":
      for (const h of new Set(hits)) {
        if (set.has(h)) set.delete(h);
        else set.add(h);
      }
  }
}

/**
 * Names a pattern selects: rig nodes in rig order, then hosts outside the
 * rig in the order first given (named by their text). Throws
 * {@linkcode ConfigurationError} for an empty item, an unknown group, an
 * item that matches no node (with the closest name), or a pattern that
 * leaves no node.
 *
 * @example
 * ```ts
 * import { selectNames } from "./nodeset.ts";
 * const universe = {
 *   rig: "lab",
 *   names: ["dut1", "dut2", "pi1"],
 *   groups: new Map([["duts", ["dut1", "dut2"]]]),
 * };
 * console.log(selectNames("@duts&dut[2-9]", universe)); // ["dut2"]
 * ```
 */
export function selectNames(pattern: string, u: NodeSetUniverse): string[] {
  if (typeof pattern !== "string" || pattern.trim() === "") {
    throw new ConfigurationError(
      `Invalid node pattern ${
        JSON.stringify(pattern)
      }: give names, @groups, globs, ranges, hosts or "all"`,
    );
  }
  const known = new Set(u.names);
  const set = new Set<string>();
  for (const { op, item } of parseNodeSet(pattern)) {
    const hits = matchItem(item, u, known);
    if (hits.length === 0) {
      throw new ConfigurationError(
        `Node pattern "${item}" matches no node in rig "${u.rig}"` +
          hint(item, u),
      );
    }
    apply(set, op, hits);
  }
  if (set.size === 0) {
    throw new ConfigurationError(
      `Node pattern "${pattern}" leaves no node in rig "${u.rig}"`,
    );
  }
  const picked = u.names.filter((n) => set.has(n));
  for (const n of set) if (!known.has(n)) picked.push(n);
  return picked;
}

function listed(items: readonly string[]): string {
  const shown = items.slice(0, 8).map((n) => `"${n}"`).join(", ");
  return items.length > 8 ? `${shown} and ${items.length - 8} more` : shown;
}

function hint(item: string, u: NodeSetUniverse): string {
  const near = /[*?[]/.test(item) ? null : closest(item, u.names);
  if (near) return `: did you mean "${near}"?`;
  return `: nodes are ${listed(u.names)}`;
}

/**
 * The known name closest to `word`, when close enough to be a typo: the one
 * "did you mean" rule, for node names here and for rig-file keys.
 */
export function closest(
  word: string,
  known: readonly string[],
): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const k of known) {
    const d: number = levenshteinDistance(word.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : null;
}
