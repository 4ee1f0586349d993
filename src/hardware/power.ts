/**
 * Power: switch rig nodes on, off or through a cycle with the switch named
 * in their `power:` entry, read the state back, and wait until a node that
 * was switched on answers again.
 *
 * The tool runs on the switch's `via` node with its own command line
 * (src/hardware/_power_tools.ts). Before anything is switched every `via` node
 * involved is asked whether the tool is there; an unreachable `via` node or
 * a missing tool rejects the whole call, so a half-switched rig never
 * results from a typo. Nodes behind one switch (same via, tool and id) are
 * switched one at a time; different switches work in parallel. A cycle
 * keeps the port off for `offTime`. With `wait: true` each node switched
 * on is polled until a command starts on it (`SshNode.waitReachable`).
 *
 * @module
 */

import { delay } from "jsr:@std/async@^1/delay";
import { getLogger } from "npm:@logtape/logtape@^2";
import {
  ConfigurationError,
  ConnectionError,
  FiwiError,
  showValue,
  TimeoutError,
} from "../errors.ts";
import type { SshNode } from "../node/node.ts";
import { endMasterUnlessShared } from "../connection/masters.ts";
import type { RunResult } from "../process/run_options.ts";
import {
  describeSwitch,
  parsePowerState,
  powerCommand,
  type PowerState,
  type PowerSwitch,
  powerSwitchProblem,
  switchKey,
  type ToolAction,
  toolCheckCommand,
  toolProgram,
  toolTimeout,
} from "./_power_tools.ts";
import { formatDuration } from "../rigfile/duration.ts";

export type { PowerState, PowerSwitch } from "./_power_tools.ts";

/** What {@linkcode powerNodes} is asked to do. */
export type PowerAction = "on" | "off" | "cycle" | "status";

/** Options of `Rig.power`. Times are milliseconds. */
export interface PowerOptions {
  /** How long a cycle keeps the power off (default 2000). */
  offTime?: number;
  /** After on or cycle, wait until the node answers again (default false). */
  wait?: boolean;
  /**
   * How long `wait` waits for each node (default 300 000: 5 min; 0: no
   * limit), and the longest any one call of a switch's tool may run when
   * that is shorter than the tool's own bound (`POWER_TOOLS[tool].timeout`,
   * 15 to 30 s): a tool that runs over it is stopped, and the node's
   * result says so.
   */
  timeout?: number;
  /** Aborting it stops between steps; nodes not yet switched stay as they are. */
  signal?: AbortSignal;
  /** Called with each node's result as soon as it is final (completion order). */
  onResult?: (result: PowerResult) => void;
}

/** The outcome for one node. */
export interface PowerResult {
  /** Node name. */
  node: string;
  /** The action asked for. */
  action: PowerAction;
  /** The port's state as the tool reported it last. */
  state: PowerState;
  /** The node reached the asked state (and answered, with `wait`). */
  success: boolean;
  /** What went wrong, if anything. */
  error: FiwiError | null;
  /** With `wait`: ms from power on until a command started on the node. */
  reachableAfterMs: number | null;
}

/** What {@linkcode powerNodes} needs of a rig. `Rig` satisfies it. */
export interface PowerRig {
  /** The rig file, for messages. */
  readonly file: string;
  /** Node name to its `power:` entry. */
  readonly powerSwitches: ReadonlyMap<string, PowerSwitch>;
  /** The node called `name`, or undefined. */
  node(name: string): SshNode | undefined;
}

/**
 * Default of {@linkcode PowerOptions.offTime}: 2 s (uhubctl's own default).
 *
 * @example
 * ```ts
 * import { DEFAULT_OFF_TIME } from "../../mod.ts";
 * console.log(DEFAULT_OFF_TIME); // ms a "cycle" keeps the power off
 * ```
 */
export const DEFAULT_OFF_TIME = 2000;
/**
 * Default of {@linkcode PowerOptions.timeout}: 5 min.
 *
 * @example
 * ```ts
 * import { DEFAULT_POWER_TIMEOUT } from "../../mod.ts";
 * console.log(DEFAULT_POWER_TIMEOUT / 60_000); // 5 (minutes)
 * ```
 */
export const DEFAULT_POWER_TIMEOUT = 300_000;
const MAX_TIMER_MS = 2 ** 31 - 1;
const ACTIONS: readonly PowerAction[] = ["on", "off", "cycle", "status"];

const log = getLogger(["fiwi", "power"]);

/** One node with its switch and the node the tool runs on. */
interface Target {
  node: SshNode;
  sw: PowerSwitch;
  via: SshNode;
}

/**
 * Switch `nodes` of `rig` (see the module doc). Resolves with one result
 * per node, in order. Rejects before anything is switched: for a bad action
 * or option, a node without `power:` or with a bad one
 * ({@linkcode ConfigurationError}), a tool missing on its `via` node
 * (`ConfigurationError`), or a `via` node that cannot be reached
 * ({@linkcode ConnectionError}); each message names the node, the switch
 * and the tool.
 */
export async function powerNodes(
  rig: PowerRig,
  nodes: readonly SshNode[],
  action: PowerAction,
  options: PowerOptions = {},
): Promise<PowerResult[]> {
  checkOptions(action, options);
  const targets = nodes.map((node) => resolveTarget(rig, node));
  await preflight(targets, options);
  const groups = new Map<string, Target[]>();
  for (const t of targets) {
    const key = switchKey(t.sw);
    groups.set(key, [...(groups.get(key) ?? []), t]);
  }
  const results = new Map<SshNode, Promise<PowerResult>>();
  await Promise.all(
    [...groups.values()].map(async (group) => {
      for (const t of group) {
        const switched = await switchOne(t, action, options);
        // The next node behind this switch need not wait for this one to boot.
        results.set(t.node, finish(t, switched, options));
      }
    }),
  );
  return await Promise.all(nodes.map((n) => results.get(n)!));
}

function checkOptions(action: PowerAction, options: PowerOptions): void {
  if (!ACTIONS.includes(action)) {
    throw new ConfigurationError(
      `Invalid power action ${
        showValue(action)
      }: use "on", "off", "cycle" or "status"`,
    );
  }
  for (const key of ["offTime", "timeout"] as const) {
    const v = options[key];
    if (
      v !== undefined &&
      (typeof v !== "number" || !Number.isFinite(v) || v < 0 ||
        v > MAX_TIMER_MS)
    ) {
      throw new ConfigurationError(
        `Invalid power ${key} ${
          showValue(v)
        }: give milliseconds from 0 to ${MAX_TIMER_MS}`,
      );
    }
  }
}

function resolveTarget(rig: PowerRig, node: SshNode): Target {
  const sw = rig.powerSwitches.get(node.name);
  if (!sw) {
    throw new ConfigurationError(
      `Node "${node.name}" has no power switch: add "power: { via, tool, id, port }" to it in ${rig.file}`,
    );
  }
  const problem = powerSwitchProblem(sw);
  if (problem) {
    throw new ConfigurationError(
      `Power switch of node "${node.name}": ${problem.message}`,
    );
  }
  const via = rig.node(sw.via);
  if (!via) {
    throw new ConfigurationError(
      `Power switch of node "${node.name}" is on "${sw.via}", which is not a node of the rig: name one in ${rig.file}`,
    );
  }
  return { node, sw, via };
}

/** Ask every `via` node involved whether its tool is there; throw at the first problem. */
async function preflight(targets: Target[], options: PowerOptions) {
  const checks = new Map<string, Target>();
  for (const t of targets) {
    checks.set(`${t.sw.via}\0${toolProgram(t.sw)}`, t);
  }
  const failures = await Promise.all(
    [...checks.values()].map(async (t) => {
      // The tool's own bound, not the caller's shorter one: this first run
      // also makes the connection (and warms the master the tool calls use).
      const r = await t.via.rexec(toolCheckCommand(t.sw), {
        cmdTimeout: toolTimeout(t.sw),
        signal: options.signal,
      });
      return r.success ? null : preflightError(t, r);
    }),
  );
  const first = failures.find((f) => f !== null);
  if (first) throw first;
}

function preflightError(t: Target, r: RunResult): FiwiError {
  const where = `the ${describeSwitch(t.sw)} that powers node "${t.node.name}"`;
  if (!r.started || r.aborted || r.timedOut) {
    const why = r.aborted ? "aborted" : (r.error?.message ?? "no answer");
    return new ConnectionError(
      `Cannot reach "${t.sw.via}" to run ${where}: ${why}; nothing was switched`,
      { cause: r.error ?? undefined },
    );
  }
  return new ConfigurationError(
    `Power tool "${
      toolProgram(t.sw)
    }" is missing on "${t.sw.via}" for ${where}: install it there or give its path as "command:"; nothing was switched`,
  );
}

/** A node after its switching, before any wait. */
interface Switched {
  result: PowerResult;
  /** performance.now() when the power came on, for `reachableAfterMs`. */
  poweredOnAt: number | null;
}

async function switchOne(
  t: Target,
  action: PowerAction,
  options: PowerOptions,
): Promise<Switched> {
  const { signal } = options;
  const done = (
    state: PowerState,
    error: FiwiError | null,
    poweredOnAt: number | null = null,
  ): Switched => ({
    result: {
      node: t.node.name,
      action,
      state,
      success: error === null && state !== "unknown",
      error,
      reachableAfterMs: null,
    },
    poweredOnAt,
  });
  if (signal?.aborted) {
    return done(
      "unknown",
      new FiwiError(`Not switched: aborted before node "${t.node.name}"`),
    );
  }
  if (action === "status") {
    const got = await runTool(t, "status", options);
    return got instanceof FiwiError ? done("unknown", got) : done(got, null);
  }
  if (action !== "on") {
    const off = await switchTo(t, "off", options);
    if (off instanceof FiwiError) return done("unknown", off);
    // The node's master died with it but may not know yet: end it, so no
    // run hangs on it (not when its via node's runs share that master).
    await endMasterUnlessShared(t.node, t.via);
    if (action === "off") return done("off", null);
    if (!(await pause(options.offTime ?? DEFAULT_OFF_TIME, signal))) {
      return done(
        "off",
        new FiwiError(
          `Cycle of node "${t.node.name}" aborted while its power was off`,
        ),
      );
    }
  }
  const on = await switchTo(t, "on", options);
  return on instanceof FiwiError
    ? done("unknown", on)
    : done("on", null, performance.now());
}

/** Wait `ms`; false when `signal` aborted the wait. */
async function pause(ms: number, signal?: AbortSignal): Promise<boolean> {
  try {
    await delay(ms, { signal });
    return true;
  } catch {
    return false;
  }
}

/** Switch and read the state back; an error unless the tool reports `want`. */
async function switchTo(
  t: Target,
  want: "on" | "off",
  options: PowerOptions,
): Promise<"on" | "off" | FiwiError> {
  log.info("Switching {node} {want} with {switch}", {
    node: t.node.name,
    want,
    switch: describeSwitch(t.sw),
  });
  const done = await runTool(t, want, options);
  if (done instanceof FiwiError) return done;
  const state = await runTool(t, "status", options);
  if (state instanceof FiwiError) return state;
  if (state !== want) {
    return new FiwiError(
      `Node "${t.node.name}" is still "${state}" after switching it ${want} with the ${
        describeSwitch(t.sw)
      }`,
    );
  }
  return want;
}

/**
 * Run the tool on the via node, bounded by {@linkcode toolTimeout} (the
 * run's end kills the tool's process group on the via node); the state it
 * printed, or why it failed.
 */
async function runTool(
  t: Target,
  action: ToolAction,
  options: PowerOptions,
): Promise<PowerState | FiwiError> {
  const limit = toolTimeout(t.sw, options.timeout);
  const r = await t.via.rexec(powerCommand(t.sw, action), {
    cmdTimeout: limit,
    signal: options.signal,
  });
  if (r.success) return parsePowerState(t.sw, r.stdout);
  const what = `${
    action === "status" ? "Reading" : `Switching ${action}`
  } node "${t.node.name}" with the ${describeSwitch(t.sw)} failed`;
  if (r.timedOut) {
    const why = r.started
      ? `${t.sw.tool} did not finish within ${
        formatDuration(limit)
      } and was stopped`
      : `no answer from "${t.sw.via}" within ${formatDuration(limit)}`;
    return new TimeoutError("command", `${what}: ${why}`, {
      cause: r.error ?? undefined,
    });
  }
  const why = r.error?.message ??
    (r.aborted
      ? "aborted"
      : `exit ${r.code}${
        r.stderr.trim() ? `: ${r.stderr.trim().split("\n").at(-1)}` : ""
      }`);
  return new FiwiError(`${what}: ${why}`, { cause: r.error ?? undefined });
}

/** The node's final result, reported to `onResult` once. */
async function finish(
  t: Target,
  switched: Switched,
  options: PowerOptions,
): Promise<PowerResult> {
  const result = await awaitAnswer(t, switched, options).catch((e) => ({
    ...switched.result,
    success: false,
    error: e instanceof FiwiError ? e : new FiwiError(String(e), { cause: e }),
  }));
  options.onResult?.(result);
  return result;
}

/** With `wait`, poll a node that was switched on until it answers. */
async function awaitAnswer(
  t: Target,
  switched: Switched,
  options: PowerOptions,
): Promise<PowerResult> {
  const { result, poweredOnAt } = switched;
  if (!options.wait || poweredOnAt === null || !result.success) return result;
  const timeout = options.timeout ||
    (options.timeout === 0 ? MAX_TIMER_MS : DEFAULT_POWER_TIMEOUT);
  const ok = await t.node.waitReachable({ timeout, signal: options.signal });
  if (ok) {
    return {
      ...result,
      reachableAfterMs: Math.round(performance.now() - poweredOnAt),
    };
  }
  return {
    ...result,
    success: false,
    error: options.signal?.aborted
      ? new FiwiError(`Waiting for node "${t.node.name}" was aborted`)
      : new TimeoutError(
        "command",
        `Node "${t.node.name}" did not answer within ${timeout} ms of power on`,
      ),
  };
}
