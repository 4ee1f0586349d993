/**
 * Node sets in the clush style, usable on their own: parse a pattern into
 * terms, expand numeric ranges, select names from a universe of names and
 * groups, and fold names back into a short set for display. Pure: nothing
 * here reads a rig file or contacts a node (`Rig.select` in `mod.ts` is the
 * same syntax evaluated against a rig).
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { expandRanges, foldNames, selectNames } from "./nodeset.ts";
 *
 * assertEquals(expandRanges("dut[1-3,7]"), ["dut1", "dut2", "dut3", "dut7"]);
 * assertEquals(foldNames(["n01", "n02", "n03", "pdu"]), "n[01-03],pdu");
 * const universe = {
 *   rig: "lab",
 *   names: ["dut1", "dut2", "dut3", "pi1"],
 *   groups: new Map([["duts", ["dut1", "dut2", "dut3"]]]),
 * };
 * assertEquals(selectNames("@duts!dut2", universe), ["dut1", "dut3"]);
 * ```
 *
 * @module
 */

export {
  expandRanges,
  foldNames,
  formatNodeList,
  MAX_EXPANSION,
  parseAdHocHost,
  parseNodeSet,
  selectNames,
} from "./src/nodeset/nodeset.ts";
export type {
  AdHocHost,
  NodeSetOperator,
  NodeSetTerm,
  NodeSetUniverse,
} from "./src/nodeset/nodeset.ts";
