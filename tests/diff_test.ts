// diffLines(), diffGroups() and formatGroups(), the printers of collated
// output: pure, table-driven, plus a property check of the line diff
// against a dynamic-programming LCS.
import { assertEquals, assertThrows } from "jsr:@std/assert@^1";
import {
  collate,
  diffGroups,
  type DiffHunk,
  diffLines,
  formatGroups,
  type RunResult,
} from "../mod.ts";
import { fakeResult } from "./_fake_result.ts";

/** Hunks as `diff -u` prints them, without the file header. */
function unified(hunks: DiffHunk[]): string {
  const range = (s: number, n: number) => n === 1 ? `${s}` : `${s},${n}`;
  return hunks.map((h) =>
    `@@ -${range(h.oldStart, h.oldLines)} +${
      range(h.newStart, h.newLines)
    } @@\n` +
    h.lines.map((l) => l + "\n").join("")
  ).join("");
}

const lines = (...ls: string[]) => ls.map((l) => l + "\n").join("");

Deno.test("diffLines() writes hunks as diff -u does", () => {
  // Each expectation is what GNU diff -u prints for the same two files.
  const ten = lines("1", "2", "3", "4", "5", "6", "7", "8", "9", "10");
  const table: [string, string, string, string][] = [
    ["equal texts", "a\nb\n", "a\nb\n", ""],
    ["both empty", "", "", ""],
    ["from nothing", "", "x\n", "@@ -0,0 +1 @@\n+x\n"],
    ["to nothing", "x\ny\n", "", "@@ -1,2 +0,0 @@\n-x\n-y\n"],
    [
      "one line changed, context around it",
      "a\nb\nc\n",
      "a\nB\nc\n",
      "@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n",
    ],
    [
      "an insertion before the first line",
      "b\nc\n",
      "a\nb\nc\n",
      "@@ -1,2 +1,3 @@\n+a\n b\n c\n",
    ],
    [
      "a last line without a newline",
      "a\nb",
      "a\nb\n",
      "@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n",
    ],
    [
      "context is cut to three lines",
      ten,
      ten.replace("5\n", "five\n"),
      "@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n",
    ],
    [
      "changes six lines apart share a hunk",
      ten,
      ten.replace("2\n", "two\n").replace("9\n", "nine\n"),
      "@@ -1,10 +1,10 @@\n 1\n-2\n+two\n 3\n 4\n 5\n 6\n 7\n 8\n-9\n+nine\n 10\n",
    ],
    [
      "changes seven lines apart get two hunks",
      lines("1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"),
      lines("1", "two", "3", "4", "5", "6", "7", "8", "9", "ten", "11"),
      "@@ -1,5 +1,5 @@\n 1\n-2\n+two\n 3\n 4\n 5\n" +
      "@@ -7,5 +7,5 @@\n 7\n 8\n 9\n-10\n+ten\n 11\n",
    ],
  ];
  for (const [what, a, b, want] of table) {
    assertEquals(unified(diffLines(a, b)), want, what);
  }
  assertEquals(
    unified(diffLines(ten, ten.replace("5\n", "five\n"), { context: 0 })),
    "@@ -5 +5 @@\n-5\n+five\n",
  );
});

/** Apply hunks to `a`: the text they say `b` is. */
function patch(a: string, hunks: DiffHunk[]): string {
  const old = a.split(/(?<=\n)/).filter((l) => l !== "");
  const out: string[] = [];
  let at = 0;
  for (const h of hunks) {
    const upTo = h.oldLines === 0 ? h.oldStart : h.oldStart - 1;
    out.push(...old.slice(at, upTo));
    at = upTo;
    h.lines.forEach((l, i) => {
      if (l.startsWith("\\")) return;
      const text = l.slice(1) +
        (h.lines[i + 1]?.startsWith("\\") ? "" : "\n");
      if (l[0] !== "+") {
        assertEquals(old[at], text, "a context or removed line matches");
        at++;
      }
      if (l[0] !== "-") out.push(text);
    });
  }
  return out.join("") + old.slice(at).join("");
}

/** Length of a longest common subsequence, by dynamic programming. */
function lcs(a: string[], b: string[]): number {
  const row = new Array(b.length + 1).fill(0);
  for (const x of a) {
    let diag = 0;
    for (let j = 1; j <= b.length; j++) {
      const up = row[j];
      row[j] = x === b[j - 1] ? diag + 1 : Math.max(row[j], row[j - 1]);
      diag = up;
    }
  }
  return row[b.length];
}

Deno.test("diffLines() gives a shortest edit that turns one text into the other", () => {
  let seed = 7;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const text = () => {
    const ls = Array.from({ length: rand(12) }, () => "abc"[rand(3)]);
    const t = ls.join("\n");
    return t === "" || rand(4) === 0 ? t : t + "\n";
  };
  for (let i = 0; i < 500; i++) {
    const a = text();
    const b = text();
    for (const context of [0, 1, 3]) {
      const hunks = diffLines(a, b, { context });
      assertEquals(patch(a, hunks), b, JSON.stringify([a, b, context]));
      const edits = hunks.flatMap((h) => h.lines)
        .filter((l) => l[0] === "-" || l[0] === "+").length;
      const as = a.split(/(?<=\n)/).filter((l) => l !== "");
      const bs = b.split(/(?<=\n)/).filter((l) => l !== "");
      assertEquals(edits, as.length + bs.length - 2 * lcs(as, bs));
    }
  }
});

Deno.test("diffLines() past its longest edit still gives a correct diff", () => {
  const many = (tag: string) =>
    Array.from({ length: 1500 }, (_, i) => `${tag}${i}\n`).join("");
  const a = "head\n" + many("a") + "tail\n";
  const b = "head\n" + many("b") + "tail\n";
  const hunks = diffLines(a, b);
  assertEquals(patch(a, hunks), b);
  assertEquals(hunks.length, 1);
  assertEquals([hunks[0].oldLines, hunks[0].newLines], [1502, 1502]);
});

Deno.test("diffLines() and diffGroups() refuse a context that is not a whole number", () => {
  for (const context of [-1, 1.5, NaN]) {
    assertThrows(
      () => diffLines("a", "b", { context }),
      RangeError,
      "Invalid context",
    );
    assertThrows(() => diffGroups([], { context }), RangeError);
  }
});

function result(node: string, stdout: string, more: Partial<RunResult> = {}) {
  return fakeResult({ node, stdout, ...more });
}

Deno.test("diffGroups() diffs every other output against the most common one", async (t) => {
  await t.step("nodes folded in both headers, counted when several", () => {
    const groups = collate([
      result("n1", "a\nb\n"),
      result("n2", "a\nb\n"),
      result("n3", "a\nb\n"),
      result("n4", "a\nB\n"),
      result("n5", "a\nb\n"),
      result("n6", "x\n"),
      result("n7", "x\n"),
    ]);
    assertEquals(
      diffGroups(groups),
      "--- n[1-3,5] (4 nodes)\n+++ n4\n@@ -1,2 +1,2 @@\n a\n-b\n+B\n" +
        "--- n[1-3,5] (4 nodes)\n+++ n[6-7] (2 nodes)\n@@ -1,2 +1 @@\n-a\n-b\n+x\n",
    );
  });
  await t.step("on a tie the first group is the reference", () => {
    const groups = collate([result("b", "2\n"), result("a", "1\n")]);
    assertEquals(diffGroups(groups), "--- b\n+++ a\n@@ -1 +1 @@\n-2\n+1\n");
  });
  await t.step("one output, or none, gives no diff", () => {
    assertEquals(
      diffGroups(collate([result("a", "x\n"), result("b", "x\n")])),
      "",
    );
    assertEquals(diffGroups([]), "");
  });
  await t.step("groups kept apart by status alone show nothing", () => {
    const groups = collate([
      result("a", "x\n"),
      result("b", "x\n", { code: 1, success: false }),
    ], { byStatus: true });
    assertEquals(groups.length, 2);
    assertEquals(diffGroups(groups), "");
  });
});

Deno.test("formatGroups() prints collated groups as dshbak -c does", () => {
  const groups = collate([
    result("n1", "same\n"),
    result("n2", "same\n"),
    result("a-very-long-node-name-indeed", "no newline"),
    result("quiet", ""),
  ]);
  const rule = "-".repeat(16);
  const long = "-".repeat("a-very-long-node-name-indeed".length);
  assertEquals(
    formatGroups(groups),
    `${rule}\nn[1-2]\n${rule}\nsame\n` +
      `${long}\na-very-long-node-name-indeed\n${long}\nno newline\n` +
      `${rule}\nquiet\n${rule}\n`,
  );
  assertEquals(
    formatGroups(groups, { headers: false }),
    "same\nno newline\n",
  );
  assertEquals(
    formatGroups(groups.slice(0, 1), { paintLabel: (l) => `<${l}>` }),
    `${rule}\n<n[1-2]>\n${rule}\nsame\n`,
  );
  assertEquals(formatGroups([]), "");
});
