// collate() and formatNodeList(): pure, table-driven.
import { assertEquals, assertThrows } from "jsr:@std/assert@^1";
import {
  collate,
  ConfigurationError,
  ConnectionError,
  formatNodeList,
  type RunResult,
} from "../mod.ts";
import { fakeResult } from "./_fake_result.ts";

function result(
  node: string,
  stdout: string,
  more: Partial<RunResult> = {},
): RunResult {
  return fakeResult({ node, stdout, ...more });
}

Deno.test("formatNodeList() compresses names the way pdsh host lists do", () => {
  const table: [string[], string][] = [
    [[], ""],
    [["solo"], "solo"],
    [["node3"], "node3"],
    [["node0", "node1", "node2", "node3"], "node[0-3]"],
    [["node0", "node1", "node3", "node7", "node8"], "node[0-1,3,7-8]"],
    [["n3", "n1", "n2"], "n[1-3]"],
    [["n9", "n10", "n11"], "n[9-11]"],
    [["n01", "n02", "n03"], "n[01-03]"],
    [["n08", "n09", "n10"], "n[08-10]"],
    [["n1", "n01"], "n[1,01]"],
    [["pi1", "relay", "pi2"], "pi[1-2],relay"],
    [["a1", "b1", "a2", "b2"], "a[1-2],b[1-2]"],
    [["r1-eth0", "r2-eth0", "r2-eth1"], "r1-eth0,r2-eth[0-1]"],
    [["dut1a", "dut2a", "dut3b"], "dut[1-2]a,dut3b"],
    [["x1", "x1", "x2"], "x[1-2]"],
  ];
  for (const [names, want] of table) {
    assertEquals(formatNodeList(names), want, JSON.stringify(names));
  }
});

Deno.test("collate() groups identical output under the nodes that produced it", () => {
  const groups = collate([
    result("node0", "5.15\n"),
    result("node1", "6.1\n"),
    result("node2", "5.15\n"),
    result("node3", "5.15\n"),
  ]);
  assertEquals(groups.map((g) => [g.label, g.nodes, g.output]), [
    ["node[0,2-3]", ["node0", "node2", "node3"], "5.15\n"],
    ["node1", ["node1"], "6.1\n"],
  ]);
  assertEquals(groups[0].results.map((r) => r.node), [
    "node0",
    "node2",
    "node3",
  ]);
});

Deno.test("collate() shows stdout then stderr by default and can pick one", () => {
  const results = [
    result("a", "out", { stderr: "warn\n" }),
    result("b", "out\n", { stderr: "warn\n" }),
    result("c", "out\n"),
  ];
  // a's final fragment "out" gets a line break before stderr: a matches b.
  assertEquals(collate(results).map((g) => [g.label, g.output]), [
    ["a,b", "out\nwarn\n"],
    ["c", "out\n"],
  ]);
  assertEquals(
    collate(results, { streams: "stdout" }).map((g) => [g.label, g.output]),
    [["a", "out"], ["b,c", "out\n"]],
  );
  assertEquals(
    collate(results, { streams: "stderr" }).map((g) => [g.label, g.output]),
    [["a,b", "warn\n"], ["c", ""]],
  );
});

Deno.test("collate() with byStatus keeps different outcomes apart", () => {
  const refused = new ConnectionError('Cannot reach node "n3": refused');
  const results = [
    result("n1", ""),
    result("n2", "", { code: 1, success: false }),
    result("n3", "", { code: 255, started: false, error: refused }),
    result("n4", ""),
    result("n5", "", { timedOut: "io", code: null, signal: "SIGTERM" }),
  ];
  assertEquals(collate(results).map((g) => g.label), ["n[1-5]"]);
  assertEquals(collate(results, { byStatus: true }).map((g) => g.label), [
    "n[1,4]",
    "n2",
    "n3",
    "n5",
  ]);
});

Deno.test("collate() of nothing is no groups; a bad streams value is refused", () => {
  assertEquals(collate([]), []);
  assertThrows(
    () => collate([], { streams: "all" as "both" }),
    ConfigurationError,
    'Invalid streams "all"',
  );
});
