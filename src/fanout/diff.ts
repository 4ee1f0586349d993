/**
 * Line diffs of collated output, the way `clush --diff` shows them: the
 * most common output is the reference, and every other group of nodes gets
 * a unified diff against it, each side named by its folded node set.
 *
 * {@linkcode diffLines} is a Myers line diff written here: `@std` has one
 * only in `@std/internal`, which is not a public module (its exports may
 * change in any release), so it is not imported. Pure.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { diffLines } from "./diff.ts";
 * const [hunk] = diffLines("a\nb\nc\n", "a\nB\nc\n");
 * assertEquals(hunk.lines, [" a", "-b", "+B", " c"]);
 * ```
 *
 * @module
 */

import type { OutputGroup } from "./collate.ts";

/** One hunk of a unified diff: see {@linkcode diffLines}. */
export interface DiffHunk {
  /**
   * First line of the hunk in the old text, counted from 1; when the hunk
   * holds no old line ({@linkcode DiffHunk.oldLines} is 0), the line after
   * which it inserts (0: before the first).
   */
  oldStart: number;
  /** Lines of the old text in the hunk (context and removed). */
  oldLines: number;
  /** First line in the new text, counted like {@linkcode DiffHunk.oldStart}. */
  newStart: number;
  /** Lines of the new text in the hunk (context and added). */
  newLines: number;
  /**
   * The body as a unified diff writes it, without newlines: `" "` then a
   * line both texts have, `"-"` a line only the old one has, `"+"` a line
   * only the new one has, and `"\ No newline at end of file"` after a last
   * line that has no newline.
   */
  lines: string[];
}

/** Options of {@linkcode diffLines} and {@linkcode diffGroups}. */
export interface DiffOptions {
  /** Unchanged lines shown around each change (default 3, like `diff -u`). */
  context?: number;
}

/**
 * Longest edit (lines removed plus lines added, after the common start and
 * end are set aside) searched for a shortest script. Time grows with the
 * texts' length times this, memory with its square; past it, the differing
 * middle is shown as removed whole and added whole, which is still a
 * correct diff, and no person reads a longer one line by line anyway.
 */
const MAX_EDIT = 1000;

const NO_NEWLINE = "\\ No newline at end of file";

type Kind = " " | "-" | "+";

/** One line of the edit script; `line` keeps its `\n`, if it has one. */
interface Op {
  kind: Kind;
  line: string;
}

/** The lines of `text`, each with its `\n` (the last one may have none). */
function splitLines(text: string): string[] {
  const lines = text.split("\n");
  const last = lines.pop()!;
  const out = lines.map((l) => l + "\n");
  if (last !== "") out.push(last);
  return out;
}

/**
 * Myers' greedy search (1986) for a shortest edit from `a` to `b`: the
 * number of each step's furthest x per diagonal, kept for the walk back.
 * Null when the edit is longer than {@linkcode MAX_EDIT}.
 */
function shortestEdit(a: Int32Array, b: Int32Array): Int32Array[] | null {
  const n = a.length;
  const m = b.length;
  const limit = Math.min(n + m, MAX_EDIT);
  const offset = limit + 1;
  const v = new Int32Array(2 * limit + 3);
  const trace: Int32Array[] = [];
  for (let d = 0; d <= limit; d++) {
    // Diagonals -d-1 .. d+1 are all step d reads.
    trace.push(v.slice(offset - d - 1, offset + d + 2));
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[offset + k - 1] < v[offset + k + 1])
        ? v[offset + k + 1]
        : v[offset + k - 1] + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v[offset + k] = x;
      if (x >= n && y >= m) return trace;
    }
  }
  return null;
}

/** The edit script between the middles `a` and `b` (no common start or end). */
function middleScript(
  aLines: readonly string[],
  bLines: readonly string[],
): Op[] {
  const ids = new Map<string, number>();
  const id = (line: string) => {
    let n = ids.get(line);
    if (n === undefined) ids.set(line, n = ids.size);
    return n;
  };
  const a = Int32Array.from(aLines, id);
  const b = Int32Array.from(bLines, id);
  const trace = shortestEdit(a, b);
  if (!trace) {
    return [
      ...aLines.map((line): Op => ({ kind: "-", line })),
      ...bLines.map((line): Op => ({ kind: "+", line })),
    ];
  }
  const ops: Op[] = [];
  let x = a.length;
  let y = b.length;
  for (let d = trace.length - 1; d >= 0; d--) {
    const v = trace[d];
    const at = (k: number) => v[k + d + 1];
    const k = x - y;
    const prevK = k === -d || (k !== d && at(k - 1) < at(k + 1))
      ? k + 1
      : k - 1;
    const prevX = at(prevK);
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      ops.push({ kind: " ", line: aLines[--x] });
      y--;
    }
    if (d > 0) {
      if (x === prevX) ops.push({ kind: "+", line: bLines[--y] });
      else ops.push({ kind: "-", line: aLines[--x] });
    }
  }
  return ops.reverse();
}

/** The whole edit script: common start, the middle's, common end. */
function editScript(a: readonly string[], b: readonly string[]): Op[] {
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) {
    start++;
  }
  let end = 0;
  while (
    end < a.length - start && end < b.length - start &&
    a[a.length - 1 - end] === b[b.length - 1 - end]
  ) end++;
  const same = (line: string): Op => ({ kind: " ", line });
  return [
    ...a.slice(0, start).map(same),
    ...middleScript(
      a.slice(start, a.length - end),
      b.slice(start, b.length - end),
    ),
    ...a.slice(a.length - end).map(same),
  ];
}

function checkContext(context: unknown): number {
  if (
    typeof context !== "number" || !Number.isInteger(context) || context < 0
  ) {
    throw new RangeError(
      `Invalid context ${JSON.stringify(context)}: give a whole number >= 0`,
    );
  }
  return context;
}

/** The hunk of `ops[from..to)`, numbered from the counts before `from`. */
function hunkOf(
  ops: Op[],
  from: number,
  to: number,
  before: number[],
): DiffHunk {
  const [oldBefore, newBefore] = before;
  let oldLines = 0;
  let newLines = 0;
  const lines: string[] = [];
  for (let i = from; i < to; i++) {
    const { kind, line } = ops[i];
    if (kind !== "+") oldLines++;
    if (kind !== "-") newLines++;
    const ended = line.endsWith("\n");
    lines.push(kind + (ended ? line.slice(0, -1) : line));
    if (!ended) lines.push(NO_NEWLINE);
  }
  return {
    oldStart: oldLines ? oldBefore + 1 : oldBefore,
    oldLines,
    newStart: newLines ? newBefore + 1 : newBefore,
    newLines,
    lines,
  };
}

/**
 * The unified diff of two texts, line by line, as hunks (`diff -u`): a
 * shortest edit script (Myers), changes closer than twice the context
 * joined in one hunk. A line's newline is part of it, so a last line
 * without one differs from the same line with one (and is marked, as
 * `diff` does). Equal texts give no hunk.
 *
 * @param oldText the text diffed against
 * @param newText the text whose differences are shown
 * @param options lines of context
 * @returns the hunks, in order
 * @throws {RangeError} when `context` is not a whole number >= 0
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { diffLines } from "../../mod.ts";
 * assertEquals(diffLines("1\n2\n3\n", "1\n3\n4\n", { context: 0 }), [
 *   { oldStart: 2, oldLines: 1, newStart: 1, newLines: 0, lines: ["-2"] },
 *   { oldStart: 3, oldLines: 0, newStart: 3, newLines: 1, lines: ["+4"] },
 * ]);
 * ```
 */
export function diffLines(
  oldText: string,
  newText: string,
  options: DiffOptions = {},
): DiffHunk[] {
  const context = checkContext(options.context ?? 3);
  const ops = editScript(splitLines(oldText), splitLines(newText));
  // Old and new lines before each op.
  const counts: number[][] = [];
  let olds = 0;
  let news = 0;
  const changes: number[] = [];
  ops.forEach((op, i) => {
    counts.push([olds, news]);
    if (op.kind !== "+") olds++;
    if (op.kind !== "-") news++;
    if (op.kind !== " ") changes.push(i);
  });
  const hunks: DiffHunk[] = [];
  for (let i = 0; i < changes.length;) {
    let last = changes[i];
    let j = i + 1;
    while (j < changes.length && changes[j] - last - 1 <= 2 * context) {
      last = changes[j++];
    }
    const from = Math.max(0, changes[i] - context);
    const to = Math.min(ops.length, last + context + 1);
    hunks.push(hunkOf(ops, from, to, counts[from]));
    i = j;
  }
  return hunks;
}

function range(start: number, lines: number): string {
  return lines === 1 ? `${start}` : `${start},${lines}`;
}

/** The text of `hunks` under their `@@` lines, each line ending in `\n`. */
function formatHunks(hunks: readonly DiffHunk[]): string {
  return hunks.map((h) =>
    `@@ -${range(h.oldStart, h.oldLines)} +${
      range(h.newStart, h.newLines)
    } @@\n` + h.lines.map((l) => l + "\n").join("")
  ).join("");
}

/** A group's name in a diff header: its node set, and how many when several. */
function groupName(group: OutputGroup): string {
  const n = group.nodes.length;
  return n > 1 ? `${group.label} (${n} nodes)` : group.label;
}

/**
 * The reference of {@linkcode diffGroups}: the group with the most nodes,
 * the first of them on a tie.
 */
function reference(groups: readonly OutputGroup[]): OutputGroup | undefined {
  let best: OutputGroup | undefined;
  for (const g of groups) {
    if (!best || g.nodes.length > best.nodes.length) best = g;
  }
  return best;
}

/**
 * `clush --diff` for collated results: the most common output (the group
 * with the most nodes; the first of them on a tie) is the reference, and
 * each other group, in order, gets a unified diff against it under a
 * `--- reference` / `+++ group` header that names both by their node sets
 * (with the node count when there are several). Identical outputs give an
 * empty string; so does a single group.
 *
 * @param groups the groups of {@linkcode collate}
 * @param options lines of context (default 3)
 * @returns the diff text, every line ending in `\n`
 * @throws {RangeError} when `context` is not a whole number >= 0
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { collate, diffGroups, SshNode } from "../../mod.ts";
 * const nodes = ["n1", "n2", "n3"].map((name) =>
 *   new SshNode({ name, host: "localhost", transport: "local" })
 * );
 * const results = await Promise.all(
 *   nodes.map((n) => n.rexec(n.name === "n2" ? "echo a; echo B" : "echo a; echo b")),
 * );
 * assertEquals(
 *   diffGroups(collate(results)),
 *   "--- n[1,3] (2 nodes)\n+++ n2\n@@ -1,2 +1,2 @@\n a\n-b\n+B\n",
 * );
 * ```
 */
export function diffGroups(
  groups: readonly OutputGroup[],
  options: DiffOptions = {},
): string {
  checkContext(options.context ?? 3);
  const ref = reference(groups);
  let text = "";
  for (const group of groups) {
    if (group === ref) continue;
    const hunks = diffLines(ref!.output, group.output, options);
    // Groups kept apart by status alone have nothing to show.
    if (hunks.length === 0) continue;
    text += `--- ${groupName(ref!)}\n+++ ${groupName(group)}\n` +
      formatHunks(hunks);
  }
  return text;
}
