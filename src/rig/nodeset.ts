/**
 * Node-set patterns, in the spirit of clush and pdsh: a comma list whose
 * items are node names, `@group`, globs (`dut*`, `rack?-[ab]`), numeric
 * ranges (`dut[1-4,7]`, `dut[01-12]`), `all`, and `!item` to leave nodes
 * out. Pure functions: the rig supplies names and groups.
 *
 * @module
 */

import { globToRegExp } from "jsr:@std/path@^1";
import { ConfigurationError } from "../errors.ts";

/** What a pattern is matched against. */
export interface NodeSetUniverse {
  /** Rig name, for messages. */
  rig: string;
  /** Node names in rig order. */
  names: readonly string[];
  /** Group name to member names. */
  groups: ReadonlyMap<string, readonly string[]>;
}

/** Split a pattern at commas outside brackets. */
export function splitPattern(pattern: string): string[] {
  const items: string[] = [];
  let depth = 0;
  let current = "";
  for (const ch of pattern) {
    if (ch === "[") depth++;
    if (ch === "]") depth = Math.max(0, depth - 1);
    if (ch === "," && depth === 0) {
      items.push(current.trim());
      current = "";
    } else current += ch;
  }
  items.push(current.trim());
  return items;
}

const RANGE_RE = /\[(\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*)\]/;

/**
 * Expand numeric ranges: `dut[1-3,7]` → dut1 dut2 dut3 dut7; a lower bound
 * with leading zeros pads every number to its width (`[01-10]`).
 */
export function expandRanges(item: string): string[] {
  const m = RANGE_RE.exec(item);
  if (!m) return [item];
  const head = item.slice(0, m.index);
  const tails = expandRanges(item.slice(m.index + m[0].length));
  const out: string[] = [];
  for (const part of m[1].split(",")) {
    const [a, b = a] = part.split("-");
    const lo = Number(a);
    const hi = Number(b);
    if (hi < lo) {
      throw new ConfigurationError(
        `Invalid range "${part}" in node pattern "${item}": the end is below the start`,
      );
    }
    if (hi - lo > 10_000) {
      throw new ConfigurationError(
        `Range "${part}" in node pattern "${item}" is too large: at most 10000 numbers`,
      );
    }
    const width = a.length > 1 && a.startsWith("0") ? a.length : 0;
    for (let n = lo; n <= hi; n++) {
      const num = String(n).padStart(width, "0");
      for (const tail of tails) out.push(head + num + tail);
    }
  }
  return out;
}

function matchItem(item: string, u: NodeSetUniverse): string[] {
  if (item === "all" || item === "*") return [...u.names];
  if (item.startsWith("@")) {
    const group = item.slice(1);
    const members = u.groups.get(group);
    if (!members) {
      const known = [...u.groups.keys()];
      throw new ConfigurationError(
        `Group "${group}" is not defined in rig "${u.rig}": ` +
          (known.length
            ? `known groups are ${known.map((g) => `"@${g}"`).join(", ")}`
            : `no node has groups`),
      );
    }
    return [...members];
  }
  if (RANGE_RE.test(item)) {
    const wanted = new Set(expandRanges(item));
    return u.names.filter((n) => wanted.has(n));
  }
  if (/[*?\[]/.test(item)) {
    const re = globToRegExp(item, { extended: false, globstar: false });
    return u.names.filter((n) => re.test(n));
  }
  return u.names.includes(item) ? [item] : [];
}

/**
 * Names a pattern selects, in rig order. Throws
 * {@linkcode ConfigurationError} for an empty item, an unknown group, or an
 * item (or the whole pattern) that matches no node.
 */
export function selectNames(pattern: string, u: NodeSetUniverse): string[] {
  if (typeof pattern !== "string" || pattern.trim() === "") {
    throw new ConfigurationError(
      `Invalid node pattern ${
        JSON.stringify(pattern)
      }: give names, @groups, globs or "all"`,
    );
  }
  const include = new Set<string>();
  const exclude = new Set<string>();
  let onlyExclusions = true;
  for (const raw of splitPattern(pattern)) {
    if (raw === "") {
      throw new ConfigurationError(
        `Invalid node pattern "${pattern}": it has an empty item`,
      );
    }
    const negated = raw.startsWith("!");
    const item = negated ? raw.slice(1) : raw;
    const hits = matchItem(item, u);
    if (hits.length === 0) {
      throw new ConfigurationError(
        `Node pattern "${item}" matches no node in rig "${u.rig}"` +
          hint(u),
      );
    }
    if (!negated) onlyExclusions = false;
    for (const name of hits) (negated ? exclude : include).add(name);
  }
  // "!dut3" alone means every node but dut3.
  if (onlyExclusions) { for (const n of u.names) include.add(n); }
  const picked = u.names.filter((n) => include.has(n) && !exclude.has(n));
  if (picked.length === 0) {
    throw new ConfigurationError(
      `Node pattern "${pattern}" leaves no node in rig "${u.rig}"`,
    );
  }
  return picked;
}

function hint(u: NodeSetUniverse): string {
  const shown = u.names.slice(0, 8).map((n) => `"${n}"`).join(", ");
  const more = u.names.length > 8 ? ` and ${u.names.length - 8} more` : "";
  return `: nodes are ${shown}${more}`;
}
