/**
 * `deno test` against your own rig: {@linkcode rigTest} registers a test that
 * runs on the rig named by the environment and is skipped, with the reason
 * printed once, where none is given. Each test gets fresh nodes and an
 * `AbortSignal`; when it ends (or runs over its time limit) the signal
 * aborts, so runs that use it stop, and every node's console and
 * ControlMaster are closed: nothing is left running on either side.
 *
 * Where the rig comes from, first match wins ({@linkcode findTestRig}):
 *
 * 1. `FIWI_RIG`: a rig file (`FIWI_RIG_NAME` picks a rig of it).
 * 2. `FIWI_REMOTE_IP`: one node, `remote1` (`FIWI_REMOTE_USER`, default
 *    root; `FIWI_REMOTE_PORT`, default what the ssh config says;
 *    `FIWI_SSH_CONFIG`), and `remote2` at `FIWI_REMOTE_IP2` when set.
 * 3. `./rigs.yaml` in the working directory.
 *
 * `FIWI_NODES` (a node-set pattern such as `@duts` or `dut[1-3]`) narrows
 * every test to those nodes.
 *
 * A test file calls `rigTest(name, async ({ nodes, signal }) => …)` at top
 * level, like `Deno.test`; `examples/rig_smoke.ts` is a complete one.
 *
 * When the rig names a lease store (`leases:`), each test first takes a
 * lease on its nodes, waiting up to its time limit for them, for its time
 * limit plus {@linkcode RIG_TEST_LEASE_MARGIN}, and drops it when it ends.
 *
 * @example
 * ```ts
 * import { findTestRig } from "../../mod.ts";
 *
 * const source = findTestRig();
 * console.log(source.kind === "none" ? source.reason : source.kind);
 * ```
 *
 * @module
 */

import { ConfigurationError, TimeoutError } from "../errors.ts";
import { SshNode } from "../node/node.ts";
import { DEFAULT_RIG_FILE, parseRig, Rig } from "./rig.ts";
import type { Lease } from "../lease/lease.ts";

/**
 * How long a {@linkcode rigTest} may run by default (ms).
 *
 * @example
 * ```ts
 * import { DEFAULT_RIG_TEST_TIMEOUT } from "../../mod.ts";
 * console.log(DEFAULT_RIG_TEST_TIMEOUT); // 60000 ms per rig test
 * ```
 */
export const DEFAULT_RIG_TEST_TIMEOUT = 60_000;

/**
 * How much longer than its time limit a {@linkcode rigTest}'s lease lasts
 * (ms): the teardown after the limit, with room to spare.
 *
 * @example
 * ```ts
 * import { RIG_TEST_LEASE_MARGIN } from "../../mod.ts";
 * console.log(RIG_TEST_LEASE_MARGIN); // 15000
 * ```
 */
export const RIG_TEST_LEASE_MARGIN = 15_000;

/** Where the test rig comes from ({@linkcode findTestRig}). */
export type TestRigSource =
  | { kind: "file"; file: string; name?: string; nodes?: string }
  | { kind: "remote"; nodes?: string }
  | { kind: "none"; reason: string };

/** What a {@linkcode rigTest} body receives. */
export interface RigTestContext {
  /** The rig, loaded afresh for this test. */
  rig: Rig;
  /** The selected nodes, in rig order (never empty). */
  nodes: SshNode[];
  /** Aborts when the test ends or runs over its time limit: pass it on. */
  signal: AbortSignal;
  /** Deno's test context, for `t.step`. */
  t: Deno.TestContext;
}

/** Options of {@linkcode rigTest}: Deno's test options plus the rig's. */
export interface RigTestOptions
  extends Omit<Deno.TestDefinition, "fn" | "name"> {
  /** Test name. */
  name: string;
  /** The test body. */
  fn: (ctx: RigTestContext) => void | Promise<void>;
  /**
   * Node-set pattern of the nodes this test needs (default `all`); with
   * `FIWI_NODES` set, only nodes matched by both run.
   */
  nodes?: string;
  /** Time limit in ms (default {@linkcode DEFAULT_RIG_TEST_TIMEOUT}). */
  timeout?: number;
}

function env(name: string): string | undefined {
  return Deno.env.get(name) || undefined;
}

/** Whether `path` is a file; an Error when that cannot be told. */
function isFile(path: string): boolean | Error {
  try {
    return Deno.statSync(path).isFile;
  } catch (e) {
    return e instanceof Deno.errors.NotFound ? false : e as Error;
  }
}

/**
 * Find the rig the environment names (see the module doc for the order),
 * or say why there is none. Reads variables and checks that a file exists;
 * it does not parse anything.
 *
 * @example
 * ```ts
 * import { findTestRig } from "../../mod.ts";
 * const source = findTestRig();
 * console.log(source.kind); // "none" unless FIWI_REMOTE_IP or FIWI_TEST_RIG is set
 * ```
 */
export function findTestRig(): TestRigSource {
  let rigFile: string | undefined;
  let remote: string | undefined;
  let nodes: string | undefined;
  let name: string | undefined;
  try {
    rigFile = env("FIWI_RIG");
    remote = env("FIWI_REMOTE_IP");
    nodes = env("FIWI_NODES");
    name = env("FIWI_RIG_NAME");
  } catch (e) {
    return {
      kind: "none",
      reason: `Cannot read FIWI_RIG: run deno test with --allow-env (${
        (e as Error).message
      })`,
    };
  }
  if (rigFile) return { kind: "file", file: rigFile, name, nodes };
  if (remote) return { kind: "remote", nodes };
  const local = isFile(DEFAULT_RIG_FILE);
  if (local instanceof Error) {
    return {
      kind: "none",
      reason: `Cannot look for ./${DEFAULT_RIG_FILE}: ${local.message}`,
    };
  }
  if (local) return { kind: "file", file: DEFAULT_RIG_FILE, name, nodes };
  return {
    kind: "none",
    reason:
      "No rig given: set FIWI_RIG=<rig file> or FIWI_REMOTE_IP=<address>, or add ./rigs.yaml",
  };
}

function portOf(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigurationError(
      `Invalid FIWI_REMOTE_PORT "${value}": give a port from 1 to 65535`,
    );
  }
  return port;
}

/** The one- or two-node rig that `FIWI_REMOTE_IP` (and `_IP2`) describe. */
function remoteRig(): Rig {
  const user = env("FIWI_REMOTE_USER") ?? "root";
  const port = portOf(env("FIWI_REMOTE_PORT"));
  const hosts = [env("FIWI_REMOTE_IP")!, env("FIWI_REMOTE_IP2")]
    .filter((h): h is string => h !== undefined);
  const nodes = hosts.map((host, i) => {
    const node = new SshNode({ name: `remote${i + 1}`, host, user, port });
    node.validate();
    return node;
  });
  return new Rig("remote", nodes, { file: "FIWI_REMOTE_IP" });
}

/**
 * Load the rig of a {@linkcode findTestRig} answer and select its nodes: `pattern` (default
 * `all`), narrowed by the source's `FIWI_NODES`. Throws
 * {@linkcode ConfigurationError} when there is no rig or no node is left, and
 * {@linkcode RigFileError} for a bad rig file.
 *
 * @example
 * ```ts
 * import { findTestRig, loadTestRig } from "../../mod.ts";
 * const source = findTestRig();
 * if (source.kind !== "none") {
 *   const { nodes } = loadTestRig(source, "all");
 *   console.log(nodes.map((n) => n.name));
 * }
 * ```
 */
export function loadTestRig(
  source: TestRigSource = findTestRig(),
  pattern = "all",
): { rig: Rig; nodes: SshNode[] } {
  if (source.kind === "none") throw new ConfigurationError(source.reason);
  const rig = source.kind === "remote" ? remoteRig() : parseRig(
    Deno.readTextFileSync(source.file),
    { file: source.file, name: source.name },
  );
  const wanted = new Set(rig.select(pattern));
  const nodes = source.nodes === undefined
    ? [...wanted]
    : rig.select(source.nodes).filter((n) => wanted.has(n));
  if (nodes.length === 0) {
    throw new ConfigurationError(
      `No node of rig "${rig.name}" matches both FIWI_NODES "${source.nodes}" and "${pattern}"`,
    );
  }
  return { rig, nodes };
}

let warnedSkip = false;

function warnSkipOnce(reason: string): void {
  if (warnedSkip) return;
  warnedSkip = true;
  console.warn(`rigTest: rig tests are skipped: ${reason}`);
}

/** Settles with `signal`'s reason as a rejection; never resolves. */
function rejectOnAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    signal.addEventListener("abort", () => reject(signal.reason), {
      once: true,
    });
  });
}

async function runBounded(
  options: RigTestOptions,
  t: Deno.TestContext,
): Promise<void> {
  const { rig, nodes } = loadTestRig(findTestRig(), options.nodes);
  const timeout = options.timeout ?? DEFAULT_RIG_TEST_TIMEOUT;
  let lease: Lease | undefined;
  try {
    if (rig.leases !== undefined) {
      lease = await rig.lease(nodes, {
        for: timeout + RIG_TEST_LEASE_MARGIN,
        wait: timeout,
        note: `rigTest "${options.name}"`,
      });
    }
  } catch (e) {
    await rig.close();
    throw e;
  }
  try {
    await runLeased(options, t, rig, nodes, timeout);
  } finally {
    try {
      await lease?.drop();
    } finally {
      await rig.close();
    }
  }
}

async function runLeased(
  options: RigTestOptions,
  t: Deno.TestContext,
  rig: Rig,
  nodes: SshNode[],
  timeout: number,
): Promise<void> {
  const controller = new AbortController();
  const timer = setTimeout(() => {
    controller.abort(
      new TimeoutError(
        "command",
        `Rig test "${options.name}" ran over its ${timeout} ms limit`,
      ),
    );
  }, timeout);
  const body = Promise.resolve()
    .then(() => options.fn({ rig, nodes, signal: controller.signal, t }));
  try {
    await Promise.race([body, rejectOnAbort(controller.signal)]);
  } finally {
    clearTimeout(timer);
    // Whatever still listens to the signal stops now; give it the time a
    // remote kill takes before the masters go.
    controller.abort();
    let grace: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      body.catch(() => {}),
      new Promise((r) => grace = setTimeout(r, 3_000)),
    ]);
    clearTimeout(grace);
  }
}

/**
 * Register a `Deno.test` that runs on the rig the environment names
 * ({@linkcode findTestRig}), or is ignored, with the reason printed once,
 * when there is none. The body gets fresh nodes and a signal; afterwards
 * every node's console and ControlMaster are closed.
 *
 * @param name test name
 * @param fn test body
 *
 * @example
 * ```ts
 * import { rigTest } from "../../mod.ts";
 * // At the top level of a *_test.ts file (here wrapped, as Deno.test does
 * // not nest):
 * const register = () =>
 *   rigTest("every node runs uname", async ({ nodes }) => {
 *     for (const node of nodes) {
 *       const r = await node.rexec("uname -s");
 *       if (!r.success) throw new Error(`${node.name}: ${r.stderr}`);
 *     }
 *   });
 * console.log(typeof register);
 * ```
 */
export function rigTest(
  name: string,
  fn: (ctx: RigTestContext) => void | Promise<void>,
): void;
/**
 * Register a rig test with options (Deno's test options, `nodes`,
 * `timeout`).
 *
 * @param options name, body, node pattern, time limit and Deno test options
 *
 * @example
 * ```ts
 * import { rigTest } from "../../mod.ts";
 * // At the top level of a *_test.ts file (wrapped here: Deno.test does not nest):
 * const register = () =>
 *   rigTest({
 *     name: "the DUTs answer",
 *     nodes: "@duts",
 *     timeout: 10_000,
 *     fn: async ({ nodes }) => {
 *       for (const node of nodes) await node.rexec("true");
 *     },
 *   });
 * console.log(typeof register);
 * ```
 */
export function rigTest(options: RigTestOptions): void;
export function rigTest(
  nameOrOptions: string | RigTestOptions,
  fn?: (ctx: RigTestContext) => void | Promise<void>,
): void {
  const options: RigTestOptions = typeof nameOrOptions === "string"
    ? { name: nameOrOptions, fn: fn! }
    : nameOrOptions;
  if (typeof options.fn !== "function") {
    throw new TypeError(`Rig test "${options.name}" has no function`);
  }
  const timeout = options.timeout ?? DEFAULT_RIG_TEST_TIMEOUT;
  if (!Number.isFinite(timeout) || timeout <= 0 || timeout > 2 ** 31 - 1) {
    throw new RangeError(
      `Invalid timeout ${timeout} for rig test "${options.name}": give 1 to ${
        2 ** 31 - 1
      } ms`,
    );
  }
  const source = findTestRig();
  if (source.kind === "none") warnSkipOnce(source.reason);
  const { fn: _fn, nodes: _nodes, timeout: _timeout, ...denoOptions } = options;
  Deno.test({
    ...denoOptions,
    ignore: source.kind === "none" || options.ignore === true,
    fn: (t) => runBounded(options, t),
  });
}
