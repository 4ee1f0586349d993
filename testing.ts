/**
 * `deno test` against your own rig: `rigTest` registers a test that runs on
 * the rig the environment names (`FIWI_RIG`, `FIWI_REMOTE_IP`, or
 * `./rigs.yaml`; `FIWI_NODES` narrows it) and is skipped, with the reason
 * printed once, where none is given. Each test gets fresh nodes and an
 * `AbortSignal`; afterwards every node's console and ControlMaster are
 * closed. The same names are exported by `mod.ts`.
 *
 * @example
 * ```ts
 * import { assertEquals } from "jsr:@std/assert@^1";
 * import { findTestRig, rigTest } from "./testing.ts";
 *
 * console.log(findTestRig().kind);
 * // In a *_test.ts file, at top level:
 * export function registerSmokeTest(): void {
 *   rigTest("every node answers", async ({ nodes, signal }) => {
 *     for (const node of nodes) {
 *       const r = await node.rexec("true", { signal });
 *       assertEquals(r.success, true, node.name);
 *     }
 *   });
 * }
 * ```
 *
 * @module
 */

export {
  DEFAULT_RIG_TEST_TIMEOUT,
  findTestRig,
  loadTestRig,
  rigTest,
} from "./src/rig/testing.ts";
export type {
  RigTestContext,
  RigTestOptions,
  TestRigSource,
} from "./src/rig/testing.ts";
